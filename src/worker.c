/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The conngov worker: loads the budgets when they change and ends
 *		sessions that stay idle past their budget's timeouts.
 *
 * The worker connects to conngov.database and sleeps on its latch.  It
 * wakes when a committed change to conngov.budgets (or reload()) sets the
 * latch, on SIGHUP, and at the nearest idle deadline.  A session that goes
 * idle after a sweep cannot be due before the sweep time plus the smallest
 * configured timeout, so the worker never sleeps past that either; with no
 * timeouts configured it sleeps until woken.  It talks to backends only
 * through shared state and signals.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* How often a standby re-reads the budgets (no trigger fires there). */
#define CG_STANDBY_RELOAD_MS	1000
/* Retry interval while the budgets table is locked. */
#define CG_LOCKED_RETRY_MS		100
/* Re-check interval while a kept (warm pool) session is past its timeout. */
#define CG_KEPT_RECHECK_MS		1000

/* A counted session the sweep looks at. */
typedef struct CgCandidate
{
	int			pid;
	int			slot;
	int			budget;
	bool		seen;			/* found in the backend status array */
	bool		in_xact;		/* idle in transaction (or aborted) */
	TimestampTz since;			/* state start */
	TimestampTz noted;			/* idle period already handled */
	bool		noted_ended;	/* ... by ending it (else: would_end_idle) */
} CgCandidate;

/* The policy part of a budget, copied out of shared memory. */
typedef struct CgPolicy
{
	char		name[NAMEDATALEN];
	bool		monitor;
	int64		idle_timeout_ms;
	int64		idle_in_xact_timeout_ms;
	int32		idle_keep;
} CgPolicy;

void
cg_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "conngov", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "cg_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, CG_WORKER_NAME, BGW_MAXLEN);
	strlcpy(worker.bgw_type, CG_WORKER_NAME, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

static int
cg_candidate_pid_cmp(const void *a, const void *b)
{
	const CgCandidate *ca = (const CgCandidate *) a;
	const CgCandidate *cb = (const CgCandidate *) b;

	return (ca->pid > cb->pid) - (ca->pid < cb->pid);
}

/* By budget, plain idle before idle in transaction, most recent first. */
static int
cg_candidate_keep_cmp(const void *a, const void *b)
{
	const CgCandidate *ca = (const CgCandidate *) a;
	const CgCandidate *cb = (const CgCandidate *) b;

	if (ca->budget != cb->budget)
		return (ca->budget > cb->budget) - (ca->budget < cb->budget);
	if (ca->in_xact != cb->in_xact)
		return ca->in_xact ? 1 : -1;
	return (ca->since < cb->since) - (ca->since > cb->since);
}

/*
 * cg_end_session: end one idle session (or record that it would be ended)
 * and write its log line, event and counter.
 */
static void
cg_end_session(const CgCandidate *c, const CgPolicy *p, bool act,
			   int64 idle_ms, int64 timeout_ms, CgSweepResult *r)
{
	CgSession  *s = &cg_sessions[c->slot];
	char		detail[128];

	if (act)
	{
		PGPROC	   *proc = BackendPidGetProc(c->pid);

		if (proc == NULL || kill(c->pid, SIGTERM) != 0)
			return;				/* it is gone already */
	}
	s->idle_noted_since = c->since;
	s->idle_noted_ended = act;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (c->budget < cg_shared->nbudgets &&
		strcmp(cg_budgets[c->budget].name, p->name) == 0)
		pg_atomic_fetch_add_u64(act ? &cg_budgets[c->budget].c.ended_idle :
								&cg_budgets[c->budget].c.would_end_idle, 1);
	LWLockRelease(cg_shared->lock);

	ereport(LOG,
			(errmsg("conngov %s session %d of budget \"%s\": %s for %.1f s (limit %.1f s), application \"%s\", role \"%s\"",
					act ? "ended" : "would end",
					c->pid, p->name,
					c->in_xact ? "idle in transaction" : "idle",
					idle_ms / 1000.0, timeout_ms / 1000.0,
					r->application_name, r->role_name)));

	snprintf(detail, sizeof(detail), "%s for %.1f s (limit %.1f s)",
			 c->in_xact ? "idle in transaction" : "idle",
			 idle_ms / 1000.0, timeout_ms / 1000.0);
	cg_add_event(act ? CG_EVENT_ENDED_IDLE : CG_EVENT_WOULD_END_IDLE,
				 p->name, c->pid, r->role_name, r->database_name,
				 r->application_name, NULL, detail);
}

/*
 * cg_sweep: one idle sweep.  Ends the sessions past their deadline (or, with
 * dry_run, only lists them) and returns when the next one can be due, 0 for
 * never.  Fills *results (palloc'd, *nresults entries) with what it ended or
 * would end.  Caller is in a transaction: the backend status snapshot is
 * cleared at its end.
 */
TimestampTz
cg_sweep(bool dry_run, CgSweepResult **results, int *nresults)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = 0;
	CgPolicy   *pol;
	CgCandidate *cand;
	int			ncand = 0;
	int			nb;
	int			i;
	int64		min_timeout_ms = 0;
	int			nbe;
	int			kept = 0;
	int			cur_budget = -1;

	*results = NULL;
	*nresults = 0;
	if (cg_mode == CG_MODE_OFF)
		return 0;

	pol = palloc(sizeof(CgPolicy) * Max(cg_max_budgets, 1));
	cand = palloc(sizeof(CgCandidate) * cg_nsessions);
	*results = palloc(sizeof(CgSweepResult) * cg_nsessions);

	/* copy the policies and the counted, governable sessions */
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	nb = cg_shared->nbudgets;
	for (i = 0; i < nb; i++)
	{
		const CgBudget *b = &cg_budgets[i];

		strlcpy(pol[i].name, b->name, NAMEDATALEN);
		pol[i].monitor = b->monitor;
		pol[i].idle_timeout_ms = b->idle_timeout_ms;
		pol[i].idle_in_xact_timeout_ms = b->idle_in_xact_timeout_ms;
		pol[i].idle_keep = b->idle_keep;
		if (b->idle_timeout_ms > 0 &&
			(min_timeout_ms == 0 || b->idle_timeout_ms < min_timeout_ms))
			min_timeout_ms = b->idle_timeout_ms;
		if (b->idle_in_xact_timeout_ms > 0 &&
			(min_timeout_ms == 0 || b->idle_in_xact_timeout_ms < min_timeout_ms))
			min_timeout_ms = b->idle_in_xact_timeout_ms;
	}
	for (i = 0; i < cg_nsessions; i++)
	{
		const CgSession *s = &cg_sessions[i];
		int			pid = s->pid;

		pg_read_barrier();
		if (pid == 0 || s->budget < 0 || s->budget >= nb || s->exempt)
			continue;
		if (pol[s->budget].idle_timeout_ms == 0 &&
			pol[s->budget].idle_in_xact_timeout_ms == 0)
			continue;
		cand[ncand].pid = pid;
		cand[ncand].slot = i;
		cand[ncand].budget = s->budget;
		cand[ncand].seen = false;
		cand[ncand].in_xact = false;
		cand[ncand].since = 0;
		cand[ncand].noted = s->idle_noted_since;
		cand[ncand].noted_ended = s->idle_noted_ended;
		ncand++;
	}
	LWLockRelease(cg_shared->lock);

	/* anything going idle from now on is due no sooner than this */
	if (min_timeout_ms > 0)
		next = TimestampTzPlusMilliseconds(now, min_timeout_ms);
	if (ncand == 0)
		return next;

	/* join with the backend status array by pid */
	qsort(cand, ncand, sizeof(CgCandidate), cg_candidate_pid_cmp);
	pgstat_clear_backend_activity_snapshot();
	nbe = pgstat_fetch_stat_numbackends();
	for (i = 1; i <= nbe; i++)
	{
		LocalPgBackendStatus *l = cg_local_beentry(i);
		PgBackendStatus *be;
		CgCandidate key;
		CgCandidate *c;

		if (l == NULL)
			continue;
		be = &l->backendStatus;
		if (be->st_backendType != B_BACKEND)
			continue;
		key.pid = be->st_procpid;
		c = bsearch(&key, cand, ncand, sizeof(CgCandidate),
					cg_candidate_pid_cmp);
		if (c == NULL)
			continue;
		if (be->st_state == STATE_IDLE)
			c->in_xact = false;
		else if (be->st_state == STATE_IDLEINTRANSACTION ||
				 be->st_state == STATE_IDLEINTRANSACTION_ABORTED)
			c->in_xact = true;
		else
			continue;
		c->seen = true;
		c->since = be->st_state_start_timestamp;
	}

	/* per budget: spare the idle_keep most recent idle, end the rest */
	qsort(cand, ncand, sizeof(CgCandidate), cg_candidate_keep_cmp);
	for (i = 0; i < ncand; i++)
	{
		CgCandidate *c = &cand[i];
		const CgPolicy *p = &pol[c->budget];
		int64		timeout_ms;
		TimestampTz deadline;
		bool		act;

		if (!c->seen)
			continue;
		if (c->budget != cur_budget)
		{
			cur_budget = c->budget;
			kept = 0;
		}
		timeout_ms = c->in_xact ? p->idle_in_xact_timeout_ms : p->idle_timeout_ms;
		if (!c->in_xact && kept < p->idle_keep)
		{
			kept++;
			/* a newer idle session can take its place: look again soon */
			if (timeout_ms > 0)
			{
				deadline = TimestampTzPlusMilliseconds(c->since, timeout_ms);
				if (deadline <= now)
					deadline = TimestampTzPlusMilliseconds(now, CG_KEPT_RECHECK_MS);
				if (next == 0 || deadline < next)
					next = deadline;
			}
			continue;
		}
		if (timeout_ms == 0)
			continue;

		deadline = TimestampTzPlusMilliseconds(c->since, timeout_ms);
		if (deadline > now)
		{
			if (next == 0 || deadline < next)
				next = deadline;
			continue;
		}

		act = (cg_mode == CG_MODE_ENFORCE && !p->monitor);
		/* handled already: ended, or recorded and still not to be ended */
		if (!dry_run && c->noted == c->since && (c->noted_ended || !act))
			continue;

		{
			CgSweepResult *r = &(*results)[*nresults];
			const CgSession *s = &cg_sessions[c->slot];

			r->pid = c->pid;
			strlcpy(r->budget, p->name, NAMEDATALEN);
			strlcpy(r->application_name, s->application_name, NAMEDATALEN);
			strlcpy(r->role_name, s->role_name, NAMEDATALEN);
			strlcpy(r->database_name, s->database_name, NAMEDATALEN);
			r->in_xact = c->in_xact;
			r->idle_ms = (now - c->since) / 1000;
			r->timeout_ms = timeout_ms;
			r->ended = act;
			if (s->pid != c->pid)
				continue;		/* slot reused meanwhile */
			if (!dry_run)
				cg_end_session(c, p, act, r->idle_ms, timeout_ms, r);
			(*nresults)++;
		}
	}

	pfree(pol);
	pfree(cand);
	return next;
}

/*
 * cg_worker_load: read the budgets in a transaction of their own and tell
 * waiting reload() callers.  Returns false when the table was locked and
 * nothing was loaded.
 */
static bool
cg_worker_load(uint32 request)
{
	int			n;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "loading budgets");
	n = cg_load_budgets();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (n < 0)
		return false;
	pg_atomic_write_u32(&cg_shared->reload_done, request);
	ConditionVariableBroadcast(&cg_shared->reload_cv);
	return true;
}

static TimestampTz
cg_worker_sweep(void)
{
	TimestampTz next;
	CgSweepResult *results;
	int			nresults;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	next = cg_sweep(false, &results, &nresults);
	CommitTransactionCommand();
	return next;
}

static void
cg_worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->worker_latch = NULL;
	cg_shared->worker_pid = 0;
	SpinLockRelease(&cg_shared->mutex);
}

void
cg_worker_main(Datum main_arg)
{
	bool		first = true;
	uint32		loaded = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(cg_database, NULL, 0);

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->worker_latch = MyLatch;
	cg_shared->worker_pid = MyProcPid;
	SpinLockRelease(&cg_shared->mutex);
	on_shmem_exit(cg_worker_detach, (Datum) 0);

	ereport(LOG,
			(errmsg("conngov worker started in database \"%s\"", cg_database)));

	for (;;)
	{
		uint32		request = pg_atomic_read_u32(&cg_shared->reload_requested);
		bool		standby = RecoveryInProgress();
		TimestampTz next;
		bool		retry;
		long		timeout_ms = -1;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		retry = false;
		if (first || request != loaded || standby)
		{
			if (cg_worker_load(request))
			{
				loaded = request;
				first = false;
			}
			else
				retry = true;
		}

		next = cg_worker_sweep();
		if (next != 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			timeout_ms = (next <= now) ? 0 : (long) ((next - now + 999) / 1000);
		}
		if (standby && (timeout_ms < 0 || timeout_ms > CG_STANDBY_RELOAD_MS))
			timeout_ms = CG_STANDBY_RELOAD_MS;
		if (retry && (timeout_ms < 0 || timeout_ms > CG_LOCKED_RETRY_MS))
			timeout_ms = CG_LOCKED_RETRY_MS;
		if (timeout_ms >= 0)
			events |= WL_TIMEOUT;

		(void) WaitLatch(MyLatch, events, timeout_ms, cg_wait_event_main());
		ResetLatch(MyLatch);
	}
}
