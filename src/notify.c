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
 * COMMIT returns to the client, for the publish of that load.  So once
 * COMMIT has returned, every later login and monitoring call sees the new
 * budgets, and no login ever waits for a publish.  Only a role allowed to
 * write the table waits; DDL and database changes, which also make the
 * loader look again, wait for nothing.
 *
 * The wait copies PostgreSQL's synchronous-commit wait (SyncRepWaitForLSN):
 * it runs after the commit record, inside CommitTransaction with
 * interrupts held, where an ERROR would be a PANIC and so would an exit.
 * So it checks the pending interrupts itself and never raises one: a
 * cancel ends the wait with a WARNING (the change is committed and applies
 * shortly) and is consumed; a terminate ends it with a WARNING and stays
 * pending, so that the session ends right after the commit; the death of
 * the postmaster is treated as a terminate, never as an exit.  The bound,
 * conngov.commit_wait_timeout, is measured on the monotonic clock, and a
 * wait that runs out says so.  It sleeps on the latch, which the loader's
 * broadcast on reload_cv sets: no polling tick.
 *
 * No wait at all when it cannot succeed: in a background worker (logical
 * replication's apply, whose commits nobody waits for), when no load can
 * run (cg_loader_can_load()), and when this transaction holds the
 * table's ACCESS EXCLUSIVE lock (LOCK TABLE, ALTER TABLE, TRUNCATE, CREATE
 * EXTENSION and INSERT in one transaction, a single-transaction restore):
 * the loader takes ACCESS SHARE only if it is free, and our locks are
 * released only after the commit callbacks.  Such a change applies right
 * after COMMIT returns instead.
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
#include "access/xlog.h"
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
#include "portability/instr_time.h"
#include "storage/lock.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "conngov.h"

PG_FUNCTION_INFO_V1(conngov_budgets_changed);

/* This transaction changed conngov.budgets: reload after it commits. */
static bool cg_change_pending = false;
/* ... by writing its rows (not DDL): the load is due at once. */
static bool cg_rows_changed = false;
/* The table whose rows changed (the trigger's): is it locked by us? */
static Oid	cg_changed_relid = InvalidOid;
static bool cg_xact_callback_registered = false;

static object_access_hook_type prev_object_access_hook = NULL;

/* What the committed change is told when COMMIT returns before it applies. */
#define CG_COMMITTED_DETAIL \
	"The change to conngov.budgets is committed and applies shortly; logins that start before then are judged by the previous budgets."

bool
cg_changes_pending(void)
{
	return cg_change_pending;
}

/*
 * cg_commit_can_wait: whether the wait for the publish of this
 * transaction's change can succeed (see the file header): a client
 * backend, a bound above 0, a load that can run, and no lock of ours that
 * the loader needs.  ACCESS EXCLUSIVE is the only mode that conflicts with
 * the loader's ACCESS SHARE.  Called in the commit callback: reads local
 * and shared state only, cannot fail.
 */
static bool
cg_commit_can_wait(void)
{
	LOCKTAG		tag;

	if (MyBackendType != B_BACKEND || cg_commit_wait_timeout <= 0)
		return false;
	if (OidIsValid(cg_changed_relid))
	{
		SET_LOCKTAG_RELATION(tag, MyDatabaseId, cg_changed_relid);
		if (cg_lock_held_by_me(&tag, AccessExclusiveLock))
			return false;
	}
	return cg_loader_can_load();
}

/*
 * cg_wait_published: in the commit callback of a transaction that changed
 * the rows of the table, wait until the load that request asked for is
 * published, at most conngov.commit_wait_timeout on the monotonic clock.
 * Runs after the commit record with interrupts held (CommitTransaction
 * holds them): it raises no ERROR and never exits, and handles a pending
 * cancel, terminate or postmaster death as SyncRepWaitForLSN() does, with
 * a WARNING; a terminate is left pending for after the commit.  The
 * loader's broadcast on reload_cv sets our latch; after each wake-up we
 * join the sleepers again before looking, so that no broadcast is missed.
 */
static void
cg_wait_published(uint32 request)
{
	instr_time	start;
	instr_time	now;

	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		int64		left;
		int			rc;

		ConditionVariablePrepareToSleep(&cg_shared->reload_cv);
		if ((int32) (pg_atomic_read_u32(&cg_shared->reload_done) - request) >= 0)
			break;

		/*
		 * Terminated: warn, and leave ProcDiePending for the first
		 * interrupt check after the commit, which ends the session.  The
		 * client still gets its COMMIT (unlike a synchronous-commit wait,
		 * nothing the client asked for is in doubt: the change is
		 * committed), then the FATAL.
		 */
		if (ProcDiePending)
		{
			ereport(WARNING,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("canceling the wait for the new connection budgets and terminating connection due to administrator command"),
					 errdetail(CG_COMMITTED_DETAIL)));
			break;
		}
		if (QueryCancelPending)
		{
			QueryCancelPending = false;
			ereport(WARNING,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("canceling the wait for the new connection budgets due to user request"),
					 errdetail(CG_COMMITTED_DETAIL)));
			break;
		}

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		left = (int64) cg_commit_wait_timeout -
			(int64) INSTR_TIME_GET_MILLISEC(now);
		if (left <= 0)
		{
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("the new connection budgets were not published within conngov.commit_wait_timeout (%d ms)",
							cg_commit_wait_timeout),
					 errdetail(CG_COMMITTED_DETAIL),
					 errhint("See conngov.health() and the server log for why the budgets could not be loaded.")));
			break;
		}

		/* postmaster death is reported, never exited on: an exit here would be a PANIC */
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH,
					   (long) left, cg_wait_event_commit());
		ResetLatch(MyLatch);
		if (rc & WL_POSTMASTER_DEATH)
		{
			/* as a terminate (die()): the session ends after the commit */
			InterruptPending = true;
			ProcDiePending = true;
			ereport(WARNING,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("canceling the wait for the new connection budgets and terminating connection because the postmaster exited"),
					 errdetail(CG_COMMITTED_DETAIL)));
			break;
		}
	}
	ConditionVariableCancelSleep();
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
				if (cg_rows_changed && event == XACT_EVENT_COMMIT &&
					cg_commit_can_wait())
					cg_wait_published(request);
			}
			cg_change_pending = false;
			cg_rows_changed = false;
			cg_changed_relid = InvalidOid;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared change loads at COMMIT PREPARED (guard.c) */
			cg_change_pending = false;
			cg_rows_changed = false;
			cg_changed_relid = InvalidOid;
			break;
		default:
			break;
	}
}

/*
 * cg_rel_has_column: whether the budgets table has a column (an older
 * version's table, before ALTER EXTENSION conngov UPDATE, lacks some).
 */
bool
cg_rel_has_column(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return true;
	}
	return false;
}

/*
 * cg_budgets_here: for the checks that the budgets fit this server, SQL
 * that selects the enforce budgets in force on this node (where), and the
 * expression of a budget's limit here (limit), as the loader computes
 * them (budgets.c): 1.2's node_role leaves out the other role's budgets,
 * max_share lowers the limit to a share of the normal slots.  A table is
 * written on a primary only, but a standby of another size may find the
 * same rows too large: its load warns.
 */
void
cg_budgets_here(Relation rel, StringInfo where, StringInfo limit)
{
	appendStringInfoString(where, "mode OPERATOR(pg_catalog.=) 'enforce'");
	if (cg_rel_has_column(rel, "node_role"))
		appendStringInfo(where, " AND node_role OPERATOR(pg_catalog.<>) '%s'",
						 RecoveryInProgress() ? "primary" : "standby");
	if (cg_rel_has_column(rel, "max_share"))
		appendStringInfo(limit,
						 "LEAST(max_connections, COALESCE(pg_catalog.floor("
						 "max_share::pg_catalog.float8 OPERATOR(pg_catalog.*) "
						 "%d::pg_catalog.float8)::pg_catalog.int4, max_connections))",
						 cg_normal_slots());
	else
		appendStringInfoString(limit, "max_connections");
}

/*
 * cg_sum_enforce: the sum of the limits (or, with floors, of the floors,
 * at most the limit) of the enforce budgets in force on this node (false
 * when there are none).  Not read-only, so that SPI takes a snapshot that
 * sees the statement's own changes.
 */
static bool
cg_sum_enforce(Relation rel, bool floors, int64 *sum)
{
	bool		isnull;
	StringInfoData where;
	StringInfoData limit;
	StringInfoData sql;

	initStringInfo(&where);
	initStringInfo(&limit);
	initStringInfo(&sql);
	cg_budgets_here(rel, &where, &limit);
	appendStringInfo(&sql, floors ?
					 "SELECT pg_catalog.sum(LEAST(min_connections, %s))::pg_catalog.int8" :
					 "SELECT pg_catalog.sum(%s)::pg_catalog.int8", limit.data);
	appendStringInfo(&sql, " FROM conngov.budgets WHERE %s", where.data);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql.data, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
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
cg_warn_oversubscribed(Relation rel)
{
	int64		sum;
	int			slots = cg_normal_slots();

	if (cg_sum_enforce(rel, false, &sum) && sum > slots)
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

	/* a floor above the budget's limit here is that limit (budgets.c) */
	if (cg_rel_has_column(rel, "min_connections") &&
		cg_sum_enforce(rel, true, &sum) && sum > slots)
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
	cg_rows_changed = true;
	cg_changed_relid =
		RelationGetRelid(((TriggerData *) fcinfo->context)->tg_relation);
	/*
	 * 1.2: the commit record carries a relcache invalidation of the table,
	 * which a standby replays: its loader, which polls for invalidations,
	 * loads at once instead of at its next periodic read (loader.c).
	 */
	CacheInvalidateRelcache(((TriggerData *) fcinfo->context)->tg_relation);
	/*
	 * The row trigger fires only under session_replication_role = replica
	 * (logical replication's apply runs no statement triggers): it marks
	 * the transaction, and leaves the checks to the statement trigger.
	 * TRUNCATE marks it too: its ACCESS EXCLUSIVE lock means no wait in
	 * the commit (cg_commit_can_wait), and a load at once after it.
	 */
	if (TRIGGER_FIRED_FOR_ROW(((TriggerData *) fcinfo->context)->tg_event))
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(((TriggerData *) fcinfo->context)->tg_event) ||
		TRIGGER_FIRED_BY_UPDATE(((TriggerData *) fcinfo->context)->tg_event))
	{
		cg_check_floors_fit(((TriggerData *) fcinfo->context)->tg_relation);
		cg_check_waits_fit(((TriggerData *) fcinfo->context)->tg_relation);
		cg_warn_oversubscribed(((TriggerData *) fcinfo->context)->tg_relation);
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
