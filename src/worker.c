/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The conngov worker: runs the idle sweeps (idle.c) at their
 *		deadlines.
 *
 * The worker is connected to no database (it needs none to end idle
 * sessions), so conngov.database stays free for whole-database operations.
 * It sleeps on its latch and wakes when a publish sets the latch (the
 * loader, loader.c, after each load: the timeouts may have changed), on
 * SIGHUP, at the nearest idle deadline and at the end of each minute, to
 * close the minute's usage history (history.c).  A session that goes idle
 * after a sweep cannot be due before the sweep time plus the smallest
 * configured timeout, so the worker never sleeps past that either; with no
 * timeouts configured it sleeps until woken (at most CG_MAX_SLEEP_MS).  It
 * talks to backends only through shared state and signals.  After a
 * publish that lowered a limit whose on_lower is end_idle (the loader sets
 * the latch then too), its next pass ends the idle sessions above the new
 * limit (lower.c).
 *
 * Loads are the loader's (loader.c), a process of its own: nothing a load
 * waits for (a lock, a database being dropped) can stall the idle
 * endings.  An ERROR in the worker itself is reported and the loop goes
 * on after a pause: it never exits for one.
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

/* Longest single sleep: deadlines further away are looked at again. */
#define CG_MAX_SLEEP_MS			3600000

/* Back-off after an ERROR in the loop: doubles from 1 s to this. */
#define CG_ERROR_PAUSE_MAX_MS	60000

/* Static, so that it survives the longjmp of an ERROR caught below. */
static int	cg_error_pause_ms = 0;

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

/*
 * cg_worker_timeout: how long to sleep, in ms: until the next idle deadline
 * (next, 0 = none), never more than CG_MAX_SLEEP_MS.  A publish that
 * changes the timeouts sets the latch (loader.c).
 */
static long
cg_worker_timeout(TimestampTz next, TimestampTz now)
{
	if (next == 0)
		return CG_MAX_SLEEP_MS;
	if (next <= now)
		return 0;
	/* round up, so that the deadline has passed when the worker wakes */
	return (long) Min((next - now + 999) / 1000, (int64) CG_MAX_SLEEP_MS);
}

/*
 * cg_recover_from_error: after an ERROR caught by a background worker's
 * sigsetjmp (the worker's, the loader's): report it, clean up, and pause
 * (*pause_ms doubles from 1 s to CG_ERROR_PAUSE_MAX_MS while errors
 * repeat; the caller sets it to 0 after a pass without one).
 */
void
cg_recover_from_error(MemoryContext loop_ctx, int *pause_ms)
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

	*pause_ms = Min(Max(*pause_ms * 2, 1000), CG_ERROR_PAUSE_MAX_MS);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 *pause_ms, cg_wait_event_main());
	ResetLatch(MyLatch);
}

/*
 * cg_loop_begin: the top of a background worker's loop (the worker's, the
 * loader's): a fresh loop context, interrupts, and SIGHUP.  Returns
 * whether the configuration was reloaded.
 */
bool
cg_loop_begin(MemoryContext loop_ctx)
{
	MemoryContextSwitchTo(loop_ctx);
	MemoryContextReset(loop_ctx);
	CHECK_FOR_INTERRUPTS();
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	return true;
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

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "conngov worker",
									 ALLOCSET_DEFAULT_SIZES);

	/*
	 * An ERROR anywhere in the loop comes back here: report it, clean up
	 * and go on after a pause that doubles while errors repeat.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
		cg_recover_from_error(loop_ctx, &cg_error_pause_ms);
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		TimestampTz next;
		CgSweepResult *results;
		int			nresults;
		TimestampTz minute_end;

		(void) cg_loop_begin(loop_ctx);
		/* a lowered limit with on_lower = end_idle (lower.c) */
		cg_end_lowered();
		next = cg_sweep(false, InvalidOid, &results, &nresults);
		/* usage history: close the minutes that ended, wake for the next */
		minute_end = cg_history_close(GetCurrentTimestamp());
		if (minute_end != 0 && (next == 0 || minute_end < next))
			next = minute_end;
		cg_error_pause_ms = 0;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 cg_worker_timeout(next, GetCurrentTimestamp()),
						 cg_wait_event_main());
		ResetLatch(MyLatch);
	}
}
