/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The conngov worker: has the budgets loaded when they change and
 *		runs the idle sweeps (idle.c) at their deadlines.
 *
 * The worker is connected to no database (it needs none to end idle
 * sessions), so conngov.database stays free for whole-database operations.
 * It sleeps on its latch and wakes when a committed change to
 * conngov.budgets (or reload()) sets the latch, when its loader stops, on
 * SIGHUP, at the nearest idle deadline and at the end of each minute, to
 * close the minute's usage history (history.c).  A session that goes idle
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

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* How often a standby re-reads the budgets (no trigger fires there). */
#define CG_STANDBY_RELOAD_MS	1000
/* Loads for DDL and database changes: at most one per this period. */
#define CG_DDL_RELOAD_MS		1000
/* First retry interval while the budgets table is locked (doubles to 1 s). */
#define CG_LOCKED_RETRY_MS		100
/* Retry interval after a failed load: doubles up to CG_FAILED_RETRY_MAX_MS. */
#define CG_FAILED_RETRY_MS		1000
#define CG_FAILED_RETRY_MAX_MS	60000
/* A loader running longer than this is stopped and counts as failed. */
#define CG_LOADER_TIMEOUT_MS	10000
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
	bool		attempted;		/* a load was ever started */
	bool		reload_now;		/* SIGHUP: load again (exempt roles check) */
	TimestampTz retry_at;		/* 0 = no retry pending */
	int			retry_ms;		/* current back-off */
	TimestampTz last_load;		/* start of the last load (standby) */
	char		logged[CG_REASON_LEN];	/* the last cause logged */
	int			error_pause_ms; /* back-off after an ERROR in the loop */
} CgWorkerState;

static CgWorkerState cg_w;

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
	if (!cg_w.attempted || cg_w.reload_now)
		due = true;
	else if (request != cg_w.launched)
	{
		/*
		 * A request the last loader did not serve.  A change of the rows
		 * loads at once (logins wait for it); the other changes that make
		 * the worker look again (DDL in schema conngov, databases created,
		 * altered or dropped, which any role with CREATEDB can make) load at
		 * most once every CG_DDL_RELOAD_MS, so that a loop of them cannot
		 * keep a loader busy.
		 */
		uint32		ryw = pg_atomic_read_u32(&cg_shared->ryw_requested);

		due = (int32) (ryw - cg_w.launched) > 0 ||
			TimestampDifferenceExceeds(cg_w.last_load, now, CG_DDL_RELOAD_MS);
		if (!due && cg_w.retry_at == 0)
			cg_w.retry_at = TimestampTzPlusMilliseconds(cg_w.last_load,
														CG_DDL_RELOAD_MS);
	}
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
		TimestampTz minute_end;

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

		/* a lowered limit with on_lower = end_idle (lower.c) */
		cg_end_lowered();
		next = cg_sweep(false, InvalidOid, &results, &nresults);
		/* usage history: close the minutes that ended, wake for the next */
		minute_end = cg_history_close(GetCurrentTimestamp());
		if (minute_end != 0 && (next == 0 || minute_end < next))
			next = minute_end;
		cg_w.error_pause_ms = 0;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 cg_worker_timeout(next, standby, GetCurrentTimestamp()),
						 cg_wait_event_main());
		ResetLatch(MyLatch);
	}
}
