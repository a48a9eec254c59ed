/*-------------------------------------------------------------------------
 *
 * funcs.c
 *		SQL-callable functions: shared state turned into rows.
 *
 * Every function first checks that conngov was preloaded.  Counters are
 * copied out under the shared lock and turned into rows after it is
 * released.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/funcs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "catalog/pg_authid_d.h"
#include "common/ip.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* How long reload() waits for the loader. */
#define CG_RELOAD_WAIT_MS	10000

PG_FUNCTION_INFO_V1(conngov_usage);
PG_FUNCTION_INFO_V1(conngov_usage_1_1);
PG_FUNCTION_INFO_V1(conngov_sessions);
PG_FUNCTION_INFO_V1(conngov_match);
PG_FUNCTION_INFO_V1(conngov_reload);
PG_FUNCTION_INFO_V1(conngov_sweep);


static Datum
cg_interval_ms(int64 ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = ms * INT64CONST(1000);
	return IntervalPGetDatum(iv);
}

static Datum
cg_name_datum(const char *s)
{
	Name		n = palloc0(NAMEDATALEN);

	strlcpy(NameStr(*n), s, NAMEDATALEN);
	return NameGetDatum(n);
}

/*
 * conngov.usage(): one row per budget plus "(unbudgeted)", from the shared
 * counters alone.  The 1.0 declaration has 8 columns (conngov_usage); 1.1
 * adds min_connections, guaranteed_unused and waiting (conngov_usage_1_1).
 */
#define CG_USAGE_COLS_1_0 8
#define CG_USAGE_COLS_1_1 11
static Datum
cg_usage_rows(FunctionCallInfo fcinfo, int ncols)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CgUsageRow *rows;
	int			n;
	int			i;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	cg_check_natts(rsinfo->setDesc, ncols, "usage");

	n = cg_copy_usage(&rows, NULL);
	for (i = 0; i < n; i++)
	{
		Datum		values[CG_USAGE_COLS_1_1];
		bool		nulls[CG_USAGE_COLS_1_1];
		int			j = 0;
		const CgUsageRow *r = &rows[i];

		memset(nulls, 0, sizeof(nulls));
		values[j++] = CStringGetTextDatum(r->name);
		if (r->max_connections < 0)
		{
			/* unbudgeted: no mode, no limit */
			nulls[j++] = true;
			nulls[j++] = true;
			values[j++] = Int32GetDatum((int32) r->total);
			values[j++] = Int32GetDatum((int32) r->peak);
			nulls[j++] = true;
			nulls[j++] = true;
			values[j++] = CStringGetTextDatum("ok");
			if (ncols >= CG_USAGE_COLS_1_1)
			{
				/* no floor, nobody waits */
				nulls[j++] = true;
				nulls[j++] = true;
				values[j++] = Int32GetDatum(0);
			}
		}
		else
		{
			values[j++] = CStringGetTextDatum(r->monitor ? "monitor" : "enforce");
			values[j++] = Int32GetDatum(r->max_connections);
			values[j++] = Int32GetDatum((int32) r->total);
			values[j++] = Int32GetDatum((int32) r->peak);
			values[j++] = Int32GetDatum(Max(r->max_connections - (int32) r->total, 0));
			if (r->max_connections > 0)
				values[j++] = Float8GetDatum((double) r->total / r->max_connections);
			else
				nulls[j++] = true;
			values[j++] = CStringGetTextDatum(cg_budget_status(r->total,
															   r->max_connections,
															   r->last_refused_at));
			if (ncols >= CG_USAGE_COLS_1_1)
			{
				values[j++] = Int32GetDatum(r->min_connections);
				/* floors of monitor budgets are not guaranteed */
				values[j++] = Int32GetDatum(r->monitor ? 0 :
											Max(r->min_connections - (int32) r->total, 0));
				values[j++] = Int32GetDatum((int32) r->waiting);
			}
		}
		Assert(j == ncols);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
conngov_usage(PG_FUNCTION_ARGS)
{
	return cg_usage_rows(fcinfo, CG_USAGE_COLS_1_0);
}

Datum
conngov_usage_1_1(PG_FUNCTION_ARGS)
{
	return cg_usage_rows(fcinfo, CG_USAGE_COLS_1_1);
}

/* A counted session, copied out under the lock. */
typedef struct CgSessionRow
{
	int			pid;
	bool		exempt;
	char		budget[NAMEDATALEN];
	char		current_budget[NAMEDATALEN];
	CgSession	s;
	PgBackendStatus *be;		/* NULL if not in the status array yet */
} CgSessionRow;

static int
cg_session_row_cmp(const void *a, const void *b)
{
	const CgSessionRow *ra = (const CgSessionRow *) a;
	const CgSessionRow *rb = (const CgSessionRow *) b;

	return (ra->pid > rb->pid) - (ra->pid < rb->pid);
}

static const char *
cg_state_name(BackendState state)
{
	switch (state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_DISABLED:
			return "disabled";
		default:
			return "starting";
	}
}

/*
 * cg_client_addr: the client's IP address as inet, or NULL (unix socket,
 * unknown).
 */
static bool
cg_client_addr(const PgBackendStatus *be, Datum *result)
{
	char		host[NI_MAXHOST];
	int			family = be->st_clientaddr.addr.ss_family;

	if (family != AF_INET && family != AF_INET6)
		return false;
	if (pg_getnameinfo_all(&be->st_clientaddr.addr, be->st_clientaddr.salen,
						   host, sizeof(host), NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return false;
	/* drop an IPv6 zone ("%eth0"), which inet does not take */
	host[strcspn(host, "%")] = '\0';
	*result = DirectFunctionCall1(inet_in, CStringGetDatum(host));
	return true;
}

/*
 * cg_sessions_current_budget: for each row with a status entry, the budget
 * a login with its current application_name would be charged to.  A
 * session charged under one name and running under another (a SET after
 * its first statement) shows two budgets.
 */
static void
cg_sessions_current_budget(CgSessionRow *rows, int n)
{
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < n; i++)
	{
		CgSessionRow *r = &rows[i];
		int			budget;

		if (r->be == NULL)
			continue;
		budget = cg_shared->state == CG_STATE_UNLOADED ? CG_UNBUDGETED :
			cg_match_budget(r->be->st_appname, r->s.role_name,
							r->s.database_name);
		strlcpy(r->current_budget,
				budget == CG_UNBUDGETED ? CG_UNBUDGETED_NAME :
				cg_budgets[budget].name, NAMEDATALEN);
	}
	LWLockRelease(cg_shared->lock);
}

/*
 * conngov.sessions(): one row per counted session.  Reads every backend's
 * status entry; client_addr only for pg_read_all_stats holders.  Works
 * with the 1.0 declaration (11 columns) and 1.1's (current_budget added),
 * by the caller's tuple descriptor.
 */
#define CG_SESSIONS_COLS 11
#define CG_SESSIONS_COLS_1_1 12
Datum
conngov_sessions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CgSessionRow *rows;
	int			n = 0;
	int			i;
	int			nbe;
	bool		see_addr;
	bool		with_current;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	see_addr = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	rows = palloc(sizeof(CgSessionRow) * cg_nsessions);
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nsessions; i++)
	{
		const CgSession *s = &cg_sessions[i];
		int			pid = s->pid;
		int			charge;

		pg_read_barrier();
		charge = cg_session_charge(s);
		if (pid == 0 || charge == CG_NOT_CHARGED)
			continue;
		rows[n].pid = pid;
		rows[n].s = *s;
		rows[n].be = NULL;
		strlcpy(rows[n].budget,
				charge == CG_UNBUDGETED ? CG_UNBUDGETED_NAME :
				cg_slots[charge].name, NAMEDATALEN);
		n++;
	}
	LWLockRelease(cg_shared->lock);

	/*
	 * A fresh copy of the backend status array: within a transaction the
	 * cached one does not know sessions that logged in since.
	 */
	qsort(rows, n, sizeof(CgSessionRow), cg_session_row_cmp);
	pgstat_clear_backend_activity_snapshot();
	nbe = pgstat_fetch_stat_numbackends();
	for (i = 1; i <= nbe; i++)
	{
		LocalPgBackendStatus *l = cg_local_beentry(i);
		CgSessionRow key;
		CgSessionRow *r;

		if (l == NULL)
			continue;
		key.pid = l->backendStatus.st_procpid;
		r = bsearch(&key, rows, n, sizeof(CgSessionRow), cg_session_row_cmp);
		if (r != NULL)
			r->be = &l->backendStatus;
	}

	/* 1.1's current_budget: what the current application_name matches */
	with_current = rsinfo->setDesc->natts > CG_SESSIONS_COLS;
	if (with_current)
		cg_sessions_current_budget(rows, n);

	for (i = 0; i < n; i++)
	{
		Datum		values[CG_SESSIONS_COLS_1_1];
		bool		nulls[CG_SESSIONS_COLS_1_1];
		int			j = 0;
		const CgSessionRow *r = &rows[i];
		const PgBackendStatus *be = r->be;

		memset(nulls, 0, sizeof(nulls));
		values[j++] = Int32GetDatum(r->pid);
		values[j++] = CStringGetTextDatum(r->budget);
		values[j++] = CStringGetTextDatum(r->s.application_name);
		if (be)
			values[j++] = CStringGetTextDatum(be->st_appname);
		else
			nulls[j++] = true;
		values[j++] = cg_name_datum(r->s.role_name);
		values[j++] = cg_name_datum(r->s.database_name);
		if (be && see_addr && cg_client_addr(be, &values[j]))
			j++;
		else
			nulls[j++] = true;
		values[j++] = CStringGetTextDatum(be ? cg_state_name(be->st_state) :
										  "starting");
		if (be && be->st_state_start_timestamp != 0)
			values[j++] = TimestampTzGetDatum(be->st_state_start_timestamp);
		else
			nulls[j++] = true;
		if (be)
			values[j++] = TimestampTzGetDatum(be->st_proc_start_timestamp);
		else
			nulls[j++] = true;
		values[j++] = BoolGetDatum(r->s.exempt);
		if (with_current)
		{
			if (be)
				values[j++] = CStringGetTextDatum(r->current_budget);
			else
				nulls[j++] = true;
		}
		Assert(j == (with_current ? CG_SESSIONS_COLS_1_1 : CG_SESSIONS_COLS));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * conngov.match(application_name, role_name, database_name): the budget a
 * login with this identity would be charged to now, as the login path
 * matches it (application_name cut to 63 bytes, as at login).
 */
Datum
conngov_match(PG_FUNCTION_ARGS)
{
	char		app[NAMEDATALEN];
	Name		role = PG_GETARG_NAME(1);
	Name		db = PG_GETARG_NAME(2);
	int			budget;
	char		name[NAMEDATALEN];

	cg_require_shared_state();
	text_to_cstring_buffer(PG_GETARG_TEXT_PP(0), app, sizeof(app));

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	budget = cg_match_budget(app, NameStr(*role), NameStr(*db));
	strlcpy(name, budget == CG_UNBUDGETED ? CG_UNBUDGETED_NAME :
			cg_budgets[budget].name, NAMEDATALEN);
	LWLockRelease(cg_shared->lock);

	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/*
 * conngov.reload(): have the loader read the table now and wait until it
 * has; returns the number of budgets loaded.  The loader reads in its own
 * transaction, so only committed rows count.
 */
Datum
conngov_reload(PG_FUNCTION_ARGS)
{
	uint32		request;
	TimestampTz start = GetCurrentTimestamp();
	int			n;
	CgLoadState state;
	char		reason[CG_REASON_LEN];

	cg_require_shared_state();
	if (cg_changes_pending())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot reload the budgets in the transaction that changed them"),
				 errdetail("conngov loads committed budgets only."),
				 errhint("Commit first: committed changes apply by themselves within a second.")));

	/* at once, as a change of the rows (only privileged roles call it) */
	request = cg_request_load(true);

	ConditionVariablePrepareToSleep(&cg_shared->reload_cv);
	while ((int32) (pg_atomic_read_u32(&cg_shared->reload_done) - request) < 0)
	{
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
									   CG_RELOAD_WAIT_MS))
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("conngov loader did not reload the budgets within %d seconds",
							CG_RELOAD_WAIT_MS / 1000),
					 errhint("Check the server log and conngov.health(): the loader reads database \"%s\".",
							 cg_database)));
		}
		(void) ConditionVariableTimedSleep(&cg_shared->reload_cv, 100,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	n = cg_shared->nbudgets;
	state = cg_shared->state;
	SpinLockAcquire(&cg_shared->mutex);
	strlcpy(reason, cg_shared->load_reason, sizeof(reason));
	SpinLockRelease(&cg_shared->mutex);
	LWLockRelease(cg_shared->lock);
	if (state == CG_STATE_FAILED || state == CG_STATE_UNTRUSTED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("conngov could not load the budgets"),
				 errdetail("%s.", reason),
				 errhint("Nothing is enforced until they can be loaded.")));
	PG_RETURN_INT32(n);
}

/*
 * conngov.sweep(dry_run): one idle sweep now; the sessions it ended, or
 * would end.
 */
#define CG_SWEEP_COLS 8
Datum
conngov_sweep(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		dry_run = PG_GETARG_BOOL(0);
	CgSweepResult *results;
	int			n;
	int			i;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);

	(void) cg_sweep(dry_run, superuser() ? InvalidOid : GetUserId(),
					&results, &n);
	for (i = 0; i < n; i++)
	{
		Datum		values[CG_SWEEP_COLS];
		bool		nulls[CG_SWEEP_COLS];
		int			j = 0;
		const CgSweepResult *r = &results[i];

		memset(nulls, 0, sizeof(nulls));
		values[j++] = Int32GetDatum(r->pid);
		values[j++] = CStringGetTextDatum(r->budget);
		values[j++] = CStringGetTextDatum(r->application_name);
		values[j++] = cg_name_datum(r->role_name);
		values[j++] = CStringGetTextDatum(r->in_xact ? "idle in transaction" : "idle");
		values[j++] = cg_interval_ms(r->idle_ms);
		values[j++] = cg_interval_ms(r->timeout_ms);
		values[j++] = CStringGetTextDatum(!r->permitted ? "not permitted" :
										  dry_run ? "would end" :
										  r->ended ? "ended" : "would end (monitor)");
		Assert(j == CG_SWEEP_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
