/*-------------------------------------------------------------------------
 *
 * notify.c
 *		Telling the loader about committed changes to conngov.budgets.
 *
 * A statement trigger on the table, and the object access hook for a
 * DROP of the table or the extension, mark the transaction; its commit
 * callback bumps the reload request and sets the loader's latch.  Nothing
 * is published from inside the writing transaction, so a rollback never
 * applies.  The trigger also warns when the enforce budgets no longer fit
 * the server, and (1.1) refuses floors that do not fit it.
 *
 * Read-your-writes: a transaction that changed the rows of the table
 * bumps the reload request in its commit callback and waits there, before
 * COMMIT returns to the client, for the loader's publish (bounded by
 * CG_AWAIT_PUBLISH_MS, interrupts held: an error after the commit record
 * would be a PANIC).  So once COMMIT has returned, every later login and
 * monitoring call sees the new budgets, and no login ever waits for a
 * publish.  Only a role allowed to write the table waits; DDL and
 * database changes, which also make the loader look again, wait for
 * nothing.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class_d.h"
#include "catalog/pg_database_d.h"
#include "commands/dbcommands.h"
#include "catalog/pg_extension_d.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "conngov.h"

PG_FUNCTION_INFO_V1(conngov_budgets_changed);

/* This transaction changed conngov.budgets: reload after it commits. */
static bool cg_change_pending = false;
/* ... by writing its rows (not DDL): later logins wait for that load. */
static bool cg_rows_changed = false;
static bool cg_xact_callback_registered = false;

static object_access_hook_type prev_object_access_hook = NULL;

/* Longest wait of a login or monitoring call for a requested publish. */
#define CG_AWAIT_PUBLISH_MS		2000

bool
cg_changes_pending(void)
{
	return cg_change_pending;
}

/*
 * cg_wait_published: in the commit callback of a transaction that changed
 * the rows of the table, wait until the loader has published the load
 * that request asked for, at most CG_AWAIT_PUBLISH_MS (the table may be
 * locked: then the budgets apply a little later, as without this wait;
 * when no load can run soon, cg_loader_can_load(), as in binary-upgrade
 * mode, it does not wait at all).  Cannot fail and takes no interrupt: it runs
 * after the commit record, where an ERROR would be a PANIC.  The loader's
 * broadcast on reload_cv sets our latch.
 */
static void
cg_wait_published(uint32 request)
{
	TimestampTz start;

	if (!cg_loader_can_load())
		return;

	HOLD_INTERRUPTS();
	start = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(&cg_shared->reload_cv);
	while ((int32) (pg_atomic_read_u32(&cg_shared->reload_done) - request) < 0 &&
		   !TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
									   CG_AWAIT_PUBLISH_MS))
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	ConditionVariableCancelSleep();
	RESUME_INTERRUPTS();
}

/*
 * cg_xact_callback: after a transaction that changed conngov.budgets
 * commits, ask the loader to reload.  A rollback forgets the change.
 * Cannot fail: atomics, a spinlock and SetLatch.
 */
static void
cg_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (cg_change_pending && cg_shared != NULL)
			{
				uint32		request;

				/* read-your-writes: the load first, then COMMIT returns */
				request = cg_request_load(cg_rows_changed);
				if (cg_rows_changed && event == XACT_EVENT_COMMIT)
					cg_wait_published(request);
			}
			cg_change_pending = false;
			cg_rows_changed = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared change loads at COMMIT PREPARED (guard.c) */
			cg_change_pending = false;
			cg_rows_changed = false;
			break;
		default:
			break;
	}
}

/*
 * cg_sum_enforce: the sum of a column of conngov.budgets over the enforce
 * budgets (false when there are none).  column is one of ours, never
 * user input.  Not read-only, so that SPI takes a snapshot that sees the
 * statement's own changes.
 */
static bool
cg_sum_enforce(const char *column, int64 *sum)
{
	bool		isnull;
	char		sql[256];

	snprintf(sql, sizeof(sql),
			 "SELECT pg_catalog.sum(%s)::pg_catalog.int8 FROM conngov.budgets"
			 " WHERE mode OPERATOR(pg_catalog.=) 'enforce'", column);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not sum conngov.budgets");
	*sum = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return !isnull;
}

/*
 * cg_warn_too_many: after an INSERT, warn when the table holds more rows
 * than conngov.max_budgets: the last ones in matching order would not be
 * enforced (health() then says how many).
 */
static void
cg_warn_too_many(void)
{
	bool		isnull;
	int64		rows;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.count(*) FROM conngov.budgets",
					false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count conngov.budgets");
	rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	if (rows > cg_max_budgets)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("conngov.budgets has " INT64_FORMAT " rows, more than conngov.max_budgets (%d): " INT64_FORMAT " of them will not be enforced",
						rows, cg_max_budgets, rows - cg_max_budgets),
				 errdetail("The budgets last in matching order (priority, name) are left out."),
				 errhint("Raise conngov.max_budgets and restart the server, or remove budgets.")));
}

/*
 * cg_warn_oversubscribed: after an INSERT or UPDATE of the budgets, warn
 * when the enforce budgets promise more connections than the server has
 * slots for applications.
 */
static void
cg_warn_oversubscribed(void)
{
	int64		sum;
	int			slots = cg_normal_slots();

	if (cg_sum_enforce("max_connections", &sum) && sum > slots)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("connection budgets are oversubscribed: enforce budgets add up to " INT64_FORMAT " connections, " INT64_FORMAT " more than the server's %d normal slots",
						sum, sum - slots, slots),
				 cg_errdetail_slots(),
				 errhint("Lower some budgets or raise max_connections: the promised pools no longer fit the server.")));
}

/*
 * cg_check_floors_fit: after an INSERT or UPDATE of a 1.1 table (one with
 * min_connections), refuse the statement when the floors of the enforce
 * budgets add up to more than the server's normal slots: such floors
 * could not all be kept.  A 1.0 table (the new library before ALTER
 * EXTENSION conngov UPDATE) has no floors to check.
 */
static void
cg_check_floors_fit(Relation rel)
{
	int64		sum;
	int			slots = cg_normal_slots();
	TupleDesc	desc = RelationGetDescr(rel);
	bool		has_column = false;
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), "min_connections") == 0)
			has_column = true;
	}
	if (has_column && cg_sum_enforce("min_connections", &sum) && sum > slots)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connection budget floors do not fit the server: enforce budgets would guarantee " INT64_FORMAT " connections, " INT64_FORMAT " more than the server's %d normal slots",
						sum, sum - slots, slots),
				 cg_errdetail_slots(),
				 errhint("Lower min_connections of some budgets or raise max_connections of the server.")));
}

/* Mark this transaction: the loader reloads once it commits. */
static void
cg_mark_changed(void)
{
	if (!cg_xact_callback_registered)
	{
		RegisterXactCallback(cg_xact_callback, NULL);
		cg_xact_callback_registered = true;
	}
	cg_change_pending = true;
}

/*
 * conngov.budgets_changed(): statement trigger on conngov.budgets.
 */
Datum
conngov_budgets_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("conngov.budgets_changed() must be called as a trigger")));

	cg_mark_changed();
	/*
	 * The row trigger fires only under session_replication_role = replica
	 * (logical replication's apply runs no statement triggers): it marks
	 * the transaction, and leaves the checks to the statement trigger.
	 */
	if (TRIGGER_FIRED_FOR_ROW(((TriggerData *) fcinfo->context)->tg_event))
	{
		cg_rows_changed = true;
		return PointerGetDatum(NULL);
	}
	/*
	 * TRUNCATE holds the table's ACCESS EXCLUSIVE lock until the commit is
	 * over, so the loader could not read it while the commit waited: it
	 * applies right after COMMIT returns instead.
	 */
	if (!TRIGGER_FIRED_BY_TRUNCATE(((TriggerData *) fcinfo->context)->tg_event))
		cg_rows_changed = true;

	if (TRIGGER_FIRED_BY_INSERT(((TriggerData *) fcinfo->context)->tg_event) ||
		TRIGGER_FIRED_BY_UPDATE(((TriggerData *) fcinfo->context)->tg_event))
	{
		cg_check_floors_fit(((TriggerData *) fcinfo->context)->tg_relation);
		cg_warn_oversubscribed();
	}
	if (TRIGGER_FIRED_BY_INSERT(((TriggerData *) fcinfo->context)->tg_event))
		cg_warn_too_many();

	return PointerGetDatum(NULL);
}

/*
 * cg_object_access: changes that can change what the loader finds make it
 * look again once they commit: a DROP of the extension, a CREATE, ALTER
 * or DROP of a relation in schema conngov of conngov.database (the table,
 * a look-alike, a retyped column), and a CREATE, ALTER (RENAME) or DROP of
 * any database (conngov.database may be the one).  A reload only reads:
 * whoever triggers one gets nothing but a fresh read of the table.
 */
static void
cg_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access != OAT_DROP && access != OAT_POST_CREATE &&
		access != OAT_POST_ALTER)
		return;
	if (classId == ExtensionRelationId)
	{
		char	   *name;

		if (access != OAT_DROP)
			return;
		name = get_extension_name(objectId);
		if (name != NULL && strcmp(name, "conngov") == 0)
			cg_mark_changed();
	}
	else if (classId == RelationRelationId)
	{
		Oid			nsp = get_namespace_oid("conngov", true);

		if (OidIsValid(nsp) && get_rel_namespace(objectId) == nsp)
		{
			char	   *db = get_database_name(MyDatabaseId);

			if (db != NULL && strcmp(db, cg_database) == 0)
				cg_mark_changed();
		}
	}
	else if (classId == DatabaseRelationId)
		cg_mark_changed();
}

void
cg_notify_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = cg_object_access;
}
