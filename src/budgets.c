/*-------------------------------------------------------------------------
 *
 * budgets.c
 *		Reading conngov.budgets, compiling it into shared memory, and the
 *		small helpers that turn a budget's figures into words.
 *
 * Only a loader process (loader.c) reads the table, in a transaction of
 * its own, so it sees committed rows only.  It runs no SQL: it checks that
 * conngov.budgets is the table CREATE EXTENSION conngov made (a member of
 * the extension, owned with its schema by a superuser, every column of the
 * expected type) and then scans the heap directly.  Nothing a non-superuser
 * can create (operators, functions, casts, look-alike tables in any schema)
 * takes part, no index is opened, and the table's lock is taken only if it
 * is free.  Sorting (priority, then name in byte order) and the interval
 * arithmetic happen here in C.
 *
 * Publishing takes the lock exclusively for a copy and a pass over the
 * session slots, which re-matches every counted session to the new budgets
 * and recomputes the totals.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/budgets.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* The columns the loader reads, by name, and the type each must have. */
typedef enum CgColumnId
{
	CG_COL_NAME,
	CG_COL_PATTERN,
	CG_COL_ROLE,
	CG_COL_DATABASE,
	CG_COL_MAX_CONNECTIONS,
	CG_COL_MODE,
	CG_COL_IDLE_TIMEOUT,
	CG_COL_IDLE_IN_XACT_TIMEOUT,
	CG_COL_IDLE_KEEP,
	CG_COL_PRIORITY,
	CG_NCOLUMNS
} CgColumnId;

static const struct
{
	const char *name;
	Oid			type;
}			cg_columns[CG_NCOLUMNS] = {
	{"name", TEXTOID},
	{"application_pattern", TEXTOID},
	{"role_name", NAMEOID},
	{"database_name", NAMEOID},
	{"max_connections", INT4OID},
	{"mode", TEXTOID},
	{"idle_timeout", INTERVALOID},
	{"idle_in_transaction_timeout", INTERVALOID},
	{"idle_keep", INT4OID},
	{"priority", INT4OID},
};

/*
 * cg_interval_to_ms: an idle timeout in milliseconds, rounded up (a
 * positive interval below 1 ms is 1 ms, never 0 = never), with months of
 * 30 days as PostgreSQL compares intervals.  Anything longer than
 * CG_MAX_TIMEOUT_MS, infinity included, is capped there: never overflows.
 * 0 for an interval that is not positive (the table refuses those).
 */
int64
cg_interval_to_ms(const Interval *iv)
{
	int64		days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	int64		us;

	if (pg_mul_s64_overflow(days, USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, iv->time, &us))
		return days > 0 ? CG_MAX_TIMEOUT_MS : 0;
	if (us <= 0)
		return 0;
	if (us / 1000 >= CG_MAX_TIMEOUT_MS)
		return CG_MAX_TIMEOUT_MS;
	return (us + 999) / 1000;
}

/* Copy a text or name column into a NAMEDATALEN buffer ("" for NULL). */
static void
cg_copy_text(char *dst, TupleTableSlot *slot, AttrNumber att, Oid type)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	if (isnull)
		dst[0] = '\0';
	else if (type == NAMEOID)
		strlcpy(dst, NameStr(*DatumGetName(d)), NAMEDATALEN);
	else
		text_to_cstring_buffer(DatumGetTextPP(d), dst, NAMEDATALEN);
}

static int32
cg_get_int4(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static int64
cg_get_timeout(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? 0 : cg_interval_to_ms(DatumGetIntervalP(d));
}

/* A role's name for a message, even when it is gone. */
static const char *
cg_role_name(Oid roleid)
{
	char	   *name = GetUserNameFromId(roleid, true);

	return name ? name : psprintf("%u", roleid);
}

/* Matching order: priority, then name in byte order (COLLATE "C"). */
static int
cg_budget_order_cmp(const void *a, const void *b)
{
	const CgBudget *ba = (const CgBudget *) a;
	const CgBudget *bb = (const CgBudget *) b;

	if (ba->priority != bb->priority)
		return ba->priority < bb->priority ? -1 : 1;
	return strcmp(ba->name, bb->name);
}

/*
 * cg_untrusted_reason: why the relation relid (locked by the caller) is
 * not the conngov.budgets that CREATE EXTENSION conngov made, or NULL when
 * it is.  Fills atts[] with each column's number.
 */
static const char *
cg_untrusted_reason(Relation rel, AttrNumber *atts)
{
	Oid			ext = get_extension_oid("conngov", true);
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	nsptup;
	Oid			nspowner;
	int			c;

	if (!OidIsValid(ext) ||
		getExtensionOfObject(RelationRelationId, RelationGetRelid(rel)) != ext)
		return psprintf("table conngov.budgets in database \"%s\" was not created by CREATE EXTENSION conngov",
						cg_database);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return psprintf("conngov.budgets in database \"%s\" is not a plain table",
						cg_database);
	if (!superuser_arg(rel->rd_rel->relowner))
		return psprintf("table conngov.budgets in database \"%s\" is owned by role \"%s\", which is not a superuser",
						cg_database,
						cg_role_name(rel->rd_rel->relowner));
	nsptup = SearchSysCache1(NAMESPACEOID,
							 ObjectIdGetDatum(RelationGetNamespace(rel)));
	if (!HeapTupleIsValid(nsptup))
		return "schema conngov is gone";
	nspowner = ((Form_pg_namespace) GETSTRUCT(nsptup))->nspowner;
	ReleaseSysCache(nsptup);
	if (!superuser_arg(nspowner))
		return psprintf("schema conngov in database \"%s\" is owned by role \"%s\", which is not a superuser",
						cg_database, cg_role_name(nspowner));

	for (c = 0; c < CG_NCOLUMNS; c++)
	{
		int			i;

		atts[c] = InvalidAttrNumber;
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);

			if (!a->attisdropped &&
				strcmp(NameStr(a->attname), cg_columns[c].name) == 0)
			{
				if (a->atttypid != cg_columns[c].type)
					return psprintf("column \"%s\" of conngov.budgets has type %s, not %s",
									cg_columns[c].name,
									format_type_be(a->atttypid),
									format_type_be(cg_columns[c].type));
				atts[c] = a->attnum;
				break;
			}
		}
		if (atts[c] == InvalidAttrNumber)
			return psprintf("table conngov.budgets has no column \"%s\"",
							cg_columns[c].name);
	}
	return NULL;
}

/*
 * cg_read_rows: every row of the table, in matching order (palloc'd,
 * *nrows of them).  Caller holds AccessShareLock on rel and an active
 * snapshot.  A plain heap scan: no index, no SQL.
 */
static CgBudget *
cg_read_rows(Relation rel, const AttrNumber *atts, int *nrows)
{
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int			cap = 64;
	int			n = 0;
	CgBudget   *rows = palloc(sizeof(CgBudget) * cap);

	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CgBudget   *b;
		char		mode[NAMEDATALEN];

		CHECK_FOR_INTERRUPTS();
		if (n == cap)
		{
			if (cap >= (int) (MaxAllocSize / sizeof(CgBudget) / 2))
				break;			/* cannot happen with max_budgets' range */
			cap *= 2;
			rows = repalloc(rows, sizeof(CgBudget) * cap);
		}
		b = &rows[n++];
		memset(b, 0, offsetof(CgBudget, c));
		cg_copy_text(b->name, slot, atts[CG_COL_NAME], TEXTOID);
		cg_copy_text(b->pattern, slot, atts[CG_COL_PATTERN], TEXTOID);
		cg_copy_text(b->role_name, slot, atts[CG_COL_ROLE], NAMEOID);
		cg_copy_text(b->database_name, slot, atts[CG_COL_DATABASE], NAMEOID);
		b->max_connections = Max(cg_get_int4(slot, atts[CG_COL_MAX_CONNECTIONS]), 0);
		cg_copy_text(mode, slot, atts[CG_COL_MODE], TEXTOID);
		b->monitor = (strcmp(mode, "monitor") == 0);
		b->idle_timeout_ms = cg_get_timeout(slot, atts[CG_COL_IDLE_TIMEOUT]);
		b->idle_in_xact_timeout_ms =
			cg_get_timeout(slot, atts[CG_COL_IDLE_IN_XACT_TIMEOUT]);
		b->idle_keep = Max(cg_get_int4(slot, atts[CG_COL_IDLE_KEEP]), 0);
		b->priority = cg_get_int4(slot, atts[CG_COL_PRIORITY]);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);

	qsort(rows, n, sizeof(CgBudget), cg_budget_order_cmp);
	*nrows = n;
	return rows;
}

/*
 * cg_load_budgets: read the table and publish it.  Caller (the loader) is
 * in a transaction with an active snapshot, connected to conngov.database.
 * Returns CG_LOAD_LOCKED, publishing nothing, when the table is locked
 * (ALTER TABLE, DROP EXTENSION in progress ...): the loader never waits on
 * it, the worker tries again shortly.  Otherwise publishes what it found
 * (nothing, with the reason in *reason, when there is no table or not the
 * extension's) and returns CG_LOAD_DONE.  When the table holds more rows
 * than conngov.max_budgets, the first ones in matching order are loaded.
 */
CgLoadResult
cg_load_budgets(char *reason)
{
	Oid			nsp = get_namespace_oid("conngov", true);
	Oid			relid;
	Relation	rel;
	AttrNumber	atts[CG_NCOLUMNS];
	const char *why;
	CgBudget   *rows;
	int			nrows;
	int			n;

	reason[0] = '\0';
	relid = OidIsValid(nsp) ? get_relname_relid("budgets", nsp) : InvalidOid;
	if (OidIsValid(relid) &&
		!ConditionalLockRelationOid(relid, AccessShareLock))
		return CG_LOAD_LOCKED;
	/* dropped between the lookup and the lock? */
	if (OidIsValid(relid) &&
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		UnlockRelationOid(relid, AccessShareLock);
		relid = InvalidOid;
	}
	if (!OidIsValid(relid))
	{
		snprintf(reason, CG_REASON_LEN,
				 "table conngov.budgets does not exist in database \"%s\"",
				 cg_database);
		cg_publish_budgets(NULL, 0, 0, CG_STATE_NO_TABLE, reason);
		return CG_LOAD_DONE;
	}

	rel = table_open(relid, NoLock);
	why = cg_untrusted_reason(rel, atts);
	if (why != NULL)
	{
		table_close(rel, NoLock);
		strlcpy(reason, why, CG_REASON_LEN);
		cg_publish_budgets(NULL, 0, 0, CG_STATE_UNTRUSTED, reason);
		return CG_LOAD_DONE;
	}
	rows = cg_read_rows(rel, atts, &nrows);
	table_close(rel, NoLock);

	n = Min(nrows, cg_max_budgets);
	if (nrows > n)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("conngov loaded %d of %d budgets: conngov.max_budgets is %d",
						n, nrows, cg_max_budgets),
				 errdetail("The last %d budgets in matching order (priority, name) are not enforced.",
						   nrows - n),
				 errhint("Raise conngov.max_budgets and restart the server.")));
	cg_publish_budgets(rows, n, nrows, CG_STATE_LOADED, "");
	pfree(rows);
	return CG_LOAD_DONE;
}

/* Plain copies of a budget's counters, for carrying them over. */
static void
cg_read_counters(CgCounters *c, CgCounterValues *v)
{
	v->peak = pg_atomic_read_u32(&c->peak);
	v->admitted = pg_atomic_read_u64(&c->admitted);
	v->refused = pg_atomic_read_u64(&c->refused);
	v->would_refuse = pg_atomic_read_u64(&c->would_refuse);
	v->ended_idle = pg_atomic_read_u64(&c->ended_idle);
	v->would_end_idle = pg_atomic_read_u64(&c->would_end_idle);
	v->last_refused_at = pg_atomic_read_u64(&c->last_refused_at);
}

/*
 * (Re)initialise counters in shared memory from plain values; total starts
 * at 0 (sessions are re-matched).  Caller holds the lock exclusively, so
 * nobody else touches them.
 */
static void
cg_init_counters_from(CgCounters *c, const CgCounterValues *v)
{
	pg_atomic_init_u32(&c->total, 0);
	pg_atomic_init_u32(&c->peak, v->peak);
	pg_atomic_init_u64(&c->admitted, v->admitted);
	pg_atomic_init_u64(&c->refused, v->refused);
	pg_atomic_init_u64(&c->would_refuse, v->would_refuse);
	pg_atomic_init_u64(&c->ended_idle, v->ended_idle);
	pg_atomic_init_u64(&c->would_end_idle, v->would_end_idle);
	pg_atomic_init_u64(&c->last_refused_at, v->last_refused_at);
}

/*
 * cg_publish_budgets: replace the shared budgets by budgets[0..nbudgets)
 * (their policy part only), in state with reason (why nothing is enforced,
 * "" when loaded).  Counters (peak, admitted, refused ...) follow a budget
 * by name; totals are recomputed by matching every counted session again.
 * Takes the lock exclusively.  Called by the loader, and by the worker
 * when a load failed.
 */
void
cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
				   CgLoadState state, const char *reason)
{
	CgCounterValues *carry = NULL;
	int			i;
	char		detail[128];

	if (nbudgets > 0)
		carry = palloc0(sizeof(CgCounterValues) * nbudgets);

	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);

	SpinLockAcquire(&cg_shared->mutex);
	strlcpy(cg_shared->load_reason, reason, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);

	/* nothing changed (a standby re-reads every second): keep all as is */
	if (cg_shared->state == state && cg_shared->nbudgets == nbudgets &&
		cg_shared->nbudgets_table == nrows)
	{
		for (i = 0; i < nbudgets; i++)
			if (memcmp(&cg_budgets[i], &budgets[i], offsetof(CgBudget, c)) != 0)
				break;
		if (i == nbudgets)
		{
			LWLockRelease(cg_shared->lock);
			if (carry)
				pfree(carry);
			return;
		}
	}

	/* counters of a budget already loaded are kept, others start at 0 */
	for (i = 0; i < nbudgets; i++)
	{
		int			j;

		for (j = 0; j < cg_shared->nbudgets; j++)
		{
			if (strcmp(cg_budgets[j].name, budgets[i].name) == 0)
			{
				cg_read_counters(&cg_budgets[j].c, &carry[i]);
				break;
			}
		}
	}
	for (i = 0; i < nbudgets; i++)
	{
		memcpy(&cg_budgets[i], &budgets[i], offsetof(CgBudget, c));
		cg_init_counters_from(&cg_budgets[i].c, &carry[i]);
	}
	cg_shared->nbudgets = nbudgets;
	cg_shared->nbudgets_table = nrows;
	cg_shared->state = state;
	cg_shared->loaded_at = GetCurrentTimestamp();
	pg_atomic_write_u32(&cg_shared->unbudgeted.total, 0);

	for (i = 0; i < cg_nsessions; i++)
	{
		CgSession  *s = &cg_sessions[i];
		uint32		in_use;

		if (s->pid == 0 || s->budget == CG_NOT_CHARGED)
			continue;
		s->budget = cg_match_budget(s->application_name, s->role_name,
									s->database_name);
		(void) cg_charge(cg_counters(s->budget), -1, &in_use);
	}

	LWLockRelease(cg_shared->lock);
	if (carry)
		pfree(carry);

	snprintf(detail, sizeof(detail), "%d budgets loaded", nbudgets);
	cg_add_event(CG_EVENT_BUDGETS_RELOADED, NULL, MyProcPid, NULL, NULL, NULL,
				 NULL, detail);
}

/*
 * cg_status: ok / warning / critical / exhausted for a budget's figures.
 * A budget with no place left (including max_connections = 0) is
 * exhausted.  If warn_ratio is set above critical_ratio, critical wins.
 */
const char *
cg_status(uint32 total, int32 max_connections)
{
	double		ratio;

	if ((int64) total >= (int64) max_connections)
		return "exhausted";
	ratio = (double) total / (double) max_connections;
	if (ratio >= cg_critical_ratio)
		return "critical";
	if (ratio >= cg_warn_ratio)
		return "warning";
	return "ok";
}

/*
 * cg_budget_status: a budget's status.  "exhausted" means logins were
 * refused within conngov.refusal_window, or the budget is over its limit
 * (exempt sessions, a lowered limit, a monitor budget: the next login
 * would be refused); "full" is a budget exactly at its limit with no
 * refusal in the window, the intended state of a fixed-size pool on an
 * exactly sized budget; below the limit, cg_status's ratios.
 */
const char *
cg_budget_status(uint32 total, int32 max_connections,
				 TimestampTz last_refused_at)
{
	if (last_refused_at != 0 &&
		!TimestampDifferenceExceeds(last_refused_at, GetCurrentTimestamp(),
									cg_refusal_window * 1000))
		return "exhausted";
	if ((int64) total > (int64) max_connections)
		return "exhausted";
	if ((int64) total == (int64) max_connections)
		return "full";
	return cg_status(total, max_connections);
}
