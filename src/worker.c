/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The conngov worker: loads the budgets when they change and ends
 *		sessions that stay idle past their budget's timeouts.
 *
 * The worker is connected to no database (it needs none to end idle
 * sessions), so conngov.database stays free for whole-database operations.
 * It sleeps on its latch and wakes when a committed change to
 * conngov.budgets (or reload()) sets the latch, when its loader stops, on
 * SIGHUP, and at the nearest idle deadline.  A session that goes idle
 * after a sweep cannot be due before the sweep time plus the smallest
 * configured timeout, so the worker never sleeps past that either; with no
 * timeouts configured it sleeps until woken (at most CG_MAX_SLEEP_MS).  It
 * talks to backends only through shared state and signals.
 *
 * Loads: the worker starts a loader (loader.c) for each needed load and
 * reads its result when it stops.  A locked table changes nothing and is
 * retried within a second.  A failed load (database gone, loader died)
 * publishes no budgets (fail open, as at start-up), is logged once per
 * distinct cause and is retried with back-off, or at once on the next
 * committed change.  The idle endings go on meanwhile: nothing the loader
 * waits for can stall them.  An ERROR in the worker itself is reported and
 * the loop goes on after a pause: it never exits for one.
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
#include "catalog/pg_authid_d.h"
#include "storage/proc.h"
#include "utils/acl.h"
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
/* First retry interval while the budgets table is locked (doubles to 1 s). */
#define CG_LOCKED_RETRY_MS		100
/* Retry interval after a failed load: doubles up to CG_FAILED_RETRY_MAX_MS. */
#define CG_FAILED_RETRY_MS		1000
#define CG_FAILED_RETRY_MAX_MS	60000
/* A loader running longer than this is stopped and counts as failed. */
#define CG_LOADER_TIMEOUT_MS	10000
/* Re-check interval while a kept (warm pool) session is past its timeout. */
#define CG_KEPT_RECHECK_MS		1000
/* Longest single sleep: deadlines further away are looked at again. */
#define CG_MAX_SLEEP_MS			3600000

/*
 * The worker's loop state.  Static, so that it survives the longjmp of an
 * ERROR caught in cg_worker_main.
 */
typedef struct CgWorkerState
{
	BackgroundWorkerHandle *loader; /* the running loader, or NULL */
	TimestampTz loader_started;
	uint32		launched;		/* request the running/last loader serves */
	uint32		loaded;			/* request last completed */
	bool		attempted;		/* a load was ever started */
	bool		reload_now;		/* SIGHUP: load again (exempt roles check) */
	TimestampTz retry_at;		/* 0 = no retry pending */
	int			retry_ms;		/* current back-off */
	TimestampTz last_load;		/* start of the last load (standby) */
	char		logged[CG_REASON_LEN];	/* the last cause logged */
	int			error_pause_ms; /* back-off after an ERROR in the loop */
} CgWorkerState;

static CgWorkerState cg_w;

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
	/* a connection to no database: shared catalogs, pg_stat_activity */
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
 * cg_may_signal: whether role may end the session of pid, by the rules of
 * pg_terminate_backend (a member of the session's role, or of
 * pg_signal_backend for a session of a role that is not a superuser).
 */
static bool
cg_may_signal(Oid role, int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);
	Oid			target;

	if (proc == NULL)
		return false;
	target = proc->roleId;
	if (superuser_arg(role))
		return true;
	if (!OidIsValid(target) || superuser_arg(target))
		return false;
	return has_privs_of_role(role, target) ||
		has_privs_of_role(role, ROLE_PG_SIGNAL_BACKEND);
}

/*
 * cg_sweep: one idle sweep.  Ends the sessions past their deadline (or, with
 * dry_run, only lists them) and returns when the next one can be due, 0 for
 * never.  Fills *results (palloc'd, *nresults entries) with what it ended or
 * would end.  With as_role valid (conngov.sweep() called by a role that is
 * not a superuser), only sessions that role could end with
 * pg_terminate_backend are ended; the others are listed as not permitted.
 * Takes a fresh backend status snapshot.
 */
TimestampTz
cg_sweep(bool dry_run, Oid as_role, CgSweepResult **results, int *nresults)
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
		int			budget;

		pg_read_barrier();
		/* read once: an exiting owner clears it under the shared lock too */
		budget = *((volatile int *) &s->budget);
		if (pid == 0 || budget < 0 || budget >= nb || s->exempt)
			continue;
		if (pol[budget].idle_timeout_ms == 0 &&
			pol[budget].idle_in_xact_timeout_ms == 0)
			continue;
		cand[ncand].pid = pid;
		cand[ncand].slot = i;
		cand[ncand].budget = budget;
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

	/* join with a fresh copy of the backend status array, by pid */
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
			r->permitted = !OidIsValid(as_role) || cg_may_signal(as_role, c->pid);
			if (s->pid != c->pid)
				continue;		/* slot reused meanwhile */
			if (!r->permitted)
				r->ended = false;
			else if (!dry_run)
				cg_end_session(c, p, act, r->idle_ms, timeout_ms, r);
			(*nresults)++;
		}
	}

	pfree(pol);
	pfree(cand);
	return next;
}

/* Log a cause once: again only after another cause (or success). */
static void
cg_worker_log_once(const char *cause, int elevel)
{
	if (strcmp(cause, cg_w.logged) == 0)
		return;
	strlcpy(cg_w.logged, cause, CG_REASON_LEN);
	if (cause[0] != '\0')
		ereport(elevel,
				(errmsg("conngov: %s; nothing is enforced until the budgets can be loaded",
						cause)));
}

/* Tell reload() callers waiting for request that it is done. */
static void
cg_worker_done(uint32 request)
{
	cg_w.loaded = request;
	pg_atomic_write_u32(&cg_shared->reload_done, request);
	ConditionVariableBroadcast(&cg_shared->reload_cv);
}

/*
 * cg_worker_collect: when the loader has stopped, act on its result.  A
 * loader running too long is stopped, and counts as failed.
 */
static void
cg_worker_collect(TimestampTz now)
{
	pid_t		pid;
	CgLoadResult result;
	char		reason[CG_REASON_LEN];

	switch (GetBackgroundWorkerPid(cg_w.loader, &pid))
	{
		case BGWH_STARTED:
		case BGWH_NOT_YET_STARTED:
			if (TimestampDifferenceExceeds(cg_w.loader_started, now,
										   CG_LOADER_TIMEOUT_MS))
				TerminateBackgroundWorker(cg_w.loader);
			return;
		default:
			break;				/* stopped, or the postmaster is gone */
	}
	pfree(cg_w.loader);
	cg_w.loader = NULL;

	SpinLockAcquire(&cg_shared->mutex);
	result = cg_shared->loader_result;
	strlcpy(reason, cg_shared->loader_reason, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);

	switch (result)
	{
		case CG_LOAD_DONE:
			/* loaded, or no table / not the extension's: reason says */
			cg_w.retry_at = 0;
			cg_w.retry_ms = 0;
			cg_worker_log_once(reason, LOG);
			cg_worker_done(cg_w.launched);
			break;
		case CG_LOAD_LOCKED:
			/* nothing changed; try again soon, the reload() waits */
			cg_w.retry_ms = cg_w.retry_ms == 0 ? CG_LOCKED_RETRY_MS :
				Min(cg_w.retry_ms * 2, 1000);
			cg_w.retry_at = TimestampTzPlusMilliseconds(now, cg_w.retry_ms);
			break;
		case CG_LOAD_FAILED:
		case CG_LOAD_RUNNING:
			{
				char		cause[CG_REASON_LEN];

				snprintf(cause, sizeof(cause),
						 "could not load the budgets from database \"%s\": %s",
						 cg_database, reason[0] != '\0' ? reason :
						 "the loader stopped without a result (see the log above)");
				cg_publish_budgets(NULL, 0, 0, CG_STATE_FAILED, cause);
				cg_worker_log_once(cause, LOG);
				cg_w.retry_ms = cg_w.retry_ms < CG_FAILED_RETRY_MS ?
					CG_FAILED_RETRY_MS :
					Min(cg_w.retry_ms * 2, CG_FAILED_RETRY_MAX_MS);
				cg_w.retry_at = TimestampTzPlusMilliseconds(now, cg_w.retry_ms);
				cg_worker_done(cg_w.launched);
				break;
			}
	}
}

/*
 * cg_worker_launch: start a loader when a load is due: at start, after a
 * newer request (a committed change, reload()), after SIGHUP, when a retry
 * is due, and every CG_STANDBY_RELOAD_MS on a standby.
 */
static void
cg_worker_launch(uint32 request, bool standby, TimestampTz now)
{
	bool		due;

	if (cg_w.loader != NULL)
		return;
	if (!cg_w.attempted || cg_w.reload_now || request != cg_w.launched)
		due = true;				/* a request the last loader did not serve */
	else if (cg_w.retry_at != 0)
		due = now >= cg_w.retry_at; /* locked or failed: back-off */
	else
		due = standby && TimestampDifferenceExceeds(cg_w.last_load, now,
													CG_STANDBY_RELOAD_MS);
	if (!due)
		return;

	if (!cg_start_loader(&cg_w.loader))
	{
		cg_w.loader = NULL;
		cg_worker_log_once("could not start a loader: no background worker slot is free (max_worker_processes)",
						   LOG);
		cg_w.retry_at = TimestampTzPlusMilliseconds(now, CG_FAILED_RETRY_MS);
		return;
	}
	cg_w.attempted = true;
	cg_w.reload_now = false;
	cg_w.launched = request;
	cg_w.loader_started = now;
	cg_w.last_load = now;
	cg_w.retry_at = 0;
}

/*
 * cg_worker_timeout: how long to sleep, in ms: until the next idle deadline
 * (next, 0 = none), a pending retry, the loader's time limit or the
 * standby's next re-read, never more than CG_MAX_SLEEP_MS.
 */
static long
cg_worker_timeout(TimestampTz next, bool standby, TimestampTz now)
{
	TimestampTz wake = next;

	if (cg_w.retry_at != 0 && (wake == 0 || cg_w.retry_at < wake))
		wake = cg_w.retry_at;
	if (cg_w.loader != NULL)
	{
		TimestampTz limit = TimestampTzPlusMilliseconds(cg_w.loader_started,
														CG_LOADER_TIMEOUT_MS);

		if (wake == 0 || limit < wake)
			wake = limit;
	}
	if (standby && cg_w.retry_at == 0)
	{
		TimestampTz reread = TimestampTzPlusMilliseconds(cg_w.last_load,
														 CG_STANDBY_RELOAD_MS);

		if (wake == 0 || reread < wake)
			wake = reread;
	}
	if (wake == 0)
		return CG_MAX_SLEEP_MS;
	if (wake <= now)
		return 0;
	/* round up, so that the deadline has passed when the worker wakes */
	return (long) Min((wake - now + 999) / 1000, (int64) CG_MAX_SLEEP_MS);
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
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext loop_ctx;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: whole-database operations on conngov.database work */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->worker_latch = MyLatch;
	cg_shared->worker_pid = MyProcPid;
	SpinLockRelease(&cg_shared->mutex);
	on_shmem_exit(cg_worker_detach, (Datum) 0);

	ereport(LOG,
			(errmsg("conngov worker started; budgets are read from database \"%s\"",
					cg_database)));

	memset(&cg_w, 0, sizeof(cg_w));
	loop_ctx = AllocSetContextCreate(TopMemoryContext, "conngov worker",
									 ALLOCSET_DEFAULT_SIZES);

	/*
	 * An ERROR anywhere in the loop comes back here: report it, clean up
	 * and go on after a pause that doubles while errors repeat.  The loader
	 * handle and the loop state live in TopMemoryContext and cg_w.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		EmitErrorReport();
		LWLockReleaseAll();
		ConditionVariableCancelSleep();
		AbortOutOfAnyTransaction();
		pgstat_clear_backend_activity_snapshot();
		MemoryContextSwitchTo(TopMemoryContext);
		FlushErrorState();
		MemoryContextReset(loop_ctx);
		RESUME_INTERRUPTS();

		cg_w.error_pause_ms = Min(Max(cg_w.error_pause_ms * 2, 1000),
								  CG_FAILED_RETRY_MAX_MS);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 cg_w.error_pause_ms, cg_wait_event_main());
		ResetLatch(MyLatch);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		uint32		request;
		bool		standby;
		TimestampTz now;
		TimestampTz next;
		CgSweepResult *results;
		int			nresults;

		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			cg_w.reload_now = true;
		}

		request = pg_atomic_read_u32(&cg_shared->reload_requested);
		standby = RecoveryInProgress();
		now = GetCurrentTimestamp();
		if (cg_w.loader != NULL)
			cg_worker_collect(now);
		cg_worker_launch(request, standby, now);

		next = cg_sweep(false, InvalidOid, &results, &nresults);
		cg_w.error_pause_ms = 0;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 cg_worker_timeout(next, standby, GetCurrentTimestamp()),
						 cg_wait_event_main());
		ResetLatch(MyLatch);
	}
}
