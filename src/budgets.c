/*-------------------------------------------------------------------------
 *
 * budgets.c
 *		Reading conngov.budgets, compiling it into shared memory, and the
 *		small helpers that turn a budget's figures into words.
 *
 * Only the worker reads the table (cg_load_budgets, in its own transaction,
 * so it sees committed rows only).  Publishing takes the lock exclusively
 * for a memcpy and a pass over the session slots, which re-matches every
 * counted session to the new budgets and recomputes the totals.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/budgets.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* Timeouts are capped at 10 years (in ms), so deadlines cannot overflow. */
#define CG_MAX_TIMEOUT_MS	"315360000000"

#define CG_BUDGETS_QUERY \
	"SELECT name, application_pattern, role_name, database_name," \
	" max_connections, mode," \
	" least(extract(epoch FROM idle_timeout) * 1000, " CG_MAX_TIMEOUT_MS ")::int8," \
	" least(extract(epoch FROM idle_in_transaction_timeout) * 1000, " CG_MAX_TIMEOUT_MS ")::int8," \
	" idle_keep, priority" \
	" FROM conngov.budgets ORDER BY priority, name COLLATE \"C\""

static void cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
							   CgLoadState state);

/*
 * cg_budgets_table: the table's OID, or InvalidOid when conngov is not
 * installed in this database.
 */
static Oid
cg_budgets_table(void)
{
	Oid			nsp = get_namespace_oid("conngov", true);

	return OidIsValid(nsp) ? get_relname_relid("budgets", nsp) : InvalidOid;
}

static void
cg_copy_text(char *dst, HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		dst[0] = '\0';
	else if (SPI_gettypeid(desc, col) == NAMEOID)
		strlcpy(dst, NameStr(*DatumGetName(d)), NAMEDATALEN);
	else
		text_to_cstring_buffer(DatumGetTextPP(d), dst, NAMEDATALEN);
}

static int64
cg_get_int(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return 0;
	if (SPI_gettypeid(desc, col) == INT8OID)
		return DatumGetInt64(d);
	return DatumGetInt32(d);
}

/*
 * cg_load_budgets: read the table and publish it.  Caller is in a
 * transaction with a snapshot, connected to conngov.database (the worker).
 * Returns the number of budgets loaded, or -1 when the table is locked
 * (ALTER TABLE, DROP EXTENSION in progress ...): the worker never waits on
 * it, it tries again shortly.  When the table holds more rows than
 * conngov.max_budgets, the first ones in matching order are loaded and a
 * WARNING names the others.
 */
int
cg_load_budgets(void)
{
	CgBudget   *budgets;
	uint64		nrows;
	int			n;
	uint64		i;
	Oid			relid = cg_budgets_table();

	if (!OidIsValid(relid))
	{
		/* only the worker publishes, so state is stable here */
		if (cg_shared->state != CG_STATE_NO_TABLE)
			ereport(LOG,
					(errmsg("conngov: table conngov.budgets does not exist in database \"%s\", nothing is enforced",
							cg_database),
					 errhint("Run CREATE EXTENSION conngov in database \"%s\".",
							 cg_database)));
		cg_publish_budgets(NULL, 0, 0, CG_STATE_NO_TABLE);
		return 0;
	}
	/* held until the end of the transaction; SPI takes it again */
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return -1;

	/* in the caller's context: SPI_finish frees what is palloc'd after */
	budgets = palloc0(sizeof(CgBudget) * cg_max_budgets);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(CG_BUDGETS_QUERY, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read conngov.budgets");

	nrows = SPI_processed;
	n = (int) Min(nrows, (uint64) cg_max_budgets);

	for (i = 0; i < (uint64) n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		CgBudget   *b = &budgets[i];
		char		mode[NAMEDATALEN];

		cg_copy_text(b->name, tup, desc, 1);
		cg_copy_text(b->pattern, tup, desc, 2);
		cg_copy_text(b->role_name, tup, desc, 3);
		cg_copy_text(b->database_name, tup, desc, 4);
		b->max_connections = (int32) cg_get_int(tup, desc, 5);
		cg_copy_text(mode, tup, desc, 6);
		b->monitor = (strcmp(mode, "monitor") == 0);
		b->idle_timeout_ms = cg_get_int(tup, desc, 7);
		b->idle_in_xact_timeout_ms = cg_get_int(tup, desc, 8);
		b->idle_keep = (int32) cg_get_int(tup, desc, 9);
		b->priority = (int32) cg_get_int(tup, desc, 10);
	}

	if (nrows > (uint64) n)
	{
		StringInfoData names;

		initStringInfo(&names);
		for (i = n; i < nrows; i++)
		{
			char		name[NAMEDATALEN];

			cg_copy_text(name, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			appendStringInfo(&names, "%s\"%s\"", i > (uint64) n ? ", " : "", name);
		}
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("conngov loaded %d of %llu budgets: conngov.max_budgets is %d",
						n, (unsigned long long) nrows, cg_max_budgets),
				 errdetail("Budgets not loaded, so not enforced: %s.", names.data),
				 errhint("Raise conngov.max_budgets and restart the server.")));
	}

	SPI_finish();

	cg_publish_budgets(budgets, n, (int) nrows, CG_STATE_LOADED);
	pfree(budgets);
	return n;
}

/*
 * cg_publish_budgets: replace the shared budgets.  Counters (peak, admitted,
 * refused ...) follow a budget by name; totals are recomputed by matching
 * every counted session again.  Takes the lock exclusively.
 */
static void
cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
				   CgLoadState state)
{
	int			i;
	char		detail[128];

	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);

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
			return;
		}
	}

	for (i = 0; i < nbudgets; i++)
	{
		CgBudget   *nb = &budgets[i];
		int			j;

		/* counters of a budget already loaded are kept, others start at 0 */
		for (j = 0; j < cg_shared->nbudgets; j++)
		{
			if (strcmp(cg_budgets[j].name, nb->name) == 0)
			{
				memcpy(&nb->c, &cg_budgets[j].c, sizeof(CgCounters));
				break;
			}
		}
		pg_atomic_write_u32(&nb->c.total, 0);
	}
	if (nbudgets > 0)
		memcpy(cg_budgets, budgets, sizeof(CgBudget) * nbudgets);
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
