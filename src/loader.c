/*-------------------------------------------------------------------------
 *
 * loader.c
 *		The conngov loader: a background worker registered at server start
 *		that reads conngov.budgets when a load is wanted, in place.
 *
 * Why a loader of its own, registered at start.  1.1 started a dynamic
 * background worker for every load: when parallel queries held every free
 * slot of max_worker_processes, no load could run (budget changes froze,
 * COMMIT waited, reload() failed), and every load paid for a process
 * start.  This loader's slot exists from server start, so a load needs no
 * free slot and starts no process.  Publishing from the writing session
 * itself (build before commit, flip at commit) was the other design: it
 * would still need a loader for start-up, standbys (no trigger fires
 * there) and DDL, and would run the trusted read inside a session that a
 * hostile role may have prepared (settings, locks, search path); one
 * reader in one place keeps the trust rules in one place.
 *
 * Life cycle.  The loader starts unconnected and waits on its latch until
 * a load is wanted (at server start, a committed change, reload(), DDL
 * in schema conngov, a database change, SIGHUP, a retry, and every
 * CG_STANDBY_RELOAD_MS on a standby).  A standby's loader also looks every
 * CG_STANDBY_POLL_MS for the relcache invalidation that the replay of a
 * change's commit sends (notify.c's trigger puts one in the commit
 * record), to load at once, and for its promotion, to load the primary's
 * budgets (1.2: node_role, budgets.c).  Then it connects once to
 * conngov.database as the bootstrap superuser, with
 * BGWORKER_BYPASS_ALLOWCONN so that ALTER DATABASE ... ALLOW_CONNECTIONS
 * false cannot switch enforcement off, pins the settings a database or
 * role default could give it, and stays connected.  Each load is one
 * transaction: the table's lock only if free (budgets.c), no SQL, no log
 * line; an ERROR is caught in place, its cause logged once.  A locked
 * table or a cancelled read (a recovery conflict on a standby) changes
 * nothing and is retried within a second; any other failure publishes no
 * budgets (fail open) and is retried with back-off, or at once after the
 * next committed change.
 *
 * Whole-database operations.  A connected loader would make DROP DATABASE,
 * ALTER DATABASE ... RENAME or SET TABLESPACE and CREATE DATABASE ...
 * TEMPLATE of conngov.database fail ("being accessed by other users"), so
 * the utility hook (guard.c) calls cg_loader_leave() before them: the
 * loader exits (code 1, so the postmaster restarts it, bgw_restart_time 0,
 * unconnected), and until the command is over (cg_loader_back(),
 * CG_LEAVE_MS at most) does not stay connected after a load.  A loader
 * that connects while a DROP runs blocks on the database's lock like any
 * backend and then fails to connect: a failed load.  The state a loader
 * process must not forget (what it served, back-off, causes logged,
 * whether it died while connecting) lives in shared memory
 * (CgLoaderState), so a restarted loader goes on where the last one
 * stopped: a loader that died while connecting (the database is gone) is a
 * failed load, one that died during a load has it retried.  In
 * binary-upgrade mode (pg_upgrade) no loader is registered.
 *
 * Requests.  cg_request_load() bumps reload_requested (and ryw_requested
 * for row changes, which load at once; other requests load at most once
 * every CG_DDL_RELOAD_MS, so that a loop of DDL by any role cannot keep
 * the loader busy), stamps pending_since and sets the loader's latch.  The
 * loader sets reload_done to the request it served and broadcasts
 * reload_cv.  cg_loader_can_load() tells a committer whether waiting for
 * a load can succeed soon.  health() reports a request not served within
 * CG_LOAD_LATE_MS.  A prepared transaction's change is asked for at its
 * COMMIT PREPARED (guard.c).
 *
 * Lock rules: CgLoaderState under cg_shared->mutex (the loader writes it;
 * leaving and leave_until by the backend of a whole-database operation);
 * the request counters and pending_since are atomics.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/loader.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* How often a standby re-reads the budgets (no trigger fires there). */
#define CG_STANDBY_RELOAD_MS	1000
/*
 * How often a standby's loader takes the invalidations replay sent (a
 * change of conngov.budgets replayed: load at once) and looks whether the
 * node was promoted (load the primary's budgets).
 */
#define CG_STANDBY_POLL_MS		100
/* Loads for DDL and database changes: at most one per this period. */
#define CG_DDL_RELOAD_MS		500
/* First retry interval while the budgets table is locked (doubles to 1 s). */
#define CG_LOCKED_RETRY_MS		100
/* Retry interval after a failed load: doubles up to CG_FAILED_RETRY_MAX_MS. */
#define CG_FAILED_RETRY_MS		1000
#define CG_FAILED_RETRY_MAX_MS	60000
/*
 * While a whole-database operation on conngov.database runs, the loader
 * does not stay connected, for this long at most (should its backend die
 * before it says it is over); the backend waits at most CG_LEAVE_WAIT_MS
 * for a connected loader to go (core's CountOtherDBBackends() waits 5 s
 * more).
 */
#define CG_LEAVE_MS				5000
#define CG_LEAVE_WAIT_MS		5000
/* A request not served within this long makes health() degraded. */
#define CG_LOAD_LATE_MS			1000
/* Longest single sleep. */
#define CG_MAX_SLEEP_MS			3600000

/*
 * The loader process's own state.  Static, so that it survives the longjmp
 * of an ERROR caught in cg_loader_main.
 */
typedef struct CgLoaderLocal
{
	bool		connected;		/* BackgroundWorkerInitializeConnection done */
	bool		reload_now;		/* SIGHUP: load again (exempt roles check) */
	int			error_pause_ms; /* back-off after an ERROR in the loop */
	Oid			budgets_relid;	/* conngov.budgets at the last load */
	bool		changed;		/* a relcache invalidation of it came */
} CgLoaderLocal;

static CgLoaderLocal cg_l;

static emit_log_hook_type prev_emit_log_hook = NULL;

/*---- registration and requests (any process) ----*/

/*
 * cg_register_loader: from _PG_init, as the worker.  Its slot of
 * max_worker_processes is taken at start, so a load never needs a free
 * one.  Restarted at once when it exits (a whole-database operation made
 * it leave, or it died): a new loader waits unconnected, and connects
 * only for a load that is due, which the back-off in shared memory
 * spaces out, so a loader that keeps failing cannot loop.
 */
void
cg_register_loader(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 0;
	strlcpy(worker.bgw_library_name, "conngov", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "cg_loader_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, CG_LOADER_NAME, BGW_MAXLEN);
	strlcpy(worker.bgw_type, CG_LOADER_NAME, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Set the loader's latch, if one runs.  Cannot fail. */
static void
cg_wake_loader(void)
{
	Latch	   *latch;

	SpinLockAcquire(&cg_shared->mutex);
	latch = cg_shared->loader.latch;
	SpinLockRelease(&cg_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * cg_request_load: ask for a load; rows: for a change of the table's rows
 * or reload(), loaded at once (other requests at most once every
 * CG_DDL_RELOAD_MS).  Returns the request's number: it is served when
 * reload_done reaches it.  Cannot fail (atomics, a spinlock, SetLatch):
 * commit callbacks call it.
 */
uint32
cg_request_load(bool rows)
{
	uint32		request;
	uint64		zero = 0;

	request = pg_atomic_add_fetch_u32(&cg_shared->reload_requested, 1);
	if (rows)
		pg_atomic_write_u32(&cg_shared->ryw_requested, request);
	(void) pg_atomic_compare_exchange_u64(&cg_shared->pending_since, &zero,
										  (uint64) GetCurrentTimestamp());
	cg_wake_loader();
	return request;
}

/* Whether a whole-database operation keeps the loader away; mutex held. */
static inline bool
cg_loader_away(const CgLoaderState *l, TimestampTz now)
{
	return l->leaving > 0 && now < l->leave_until;
}

/*
 * cg_loader_can_load: whether a load requested now can complete soon: a
 * loader process runs, no whole-database operation on conngov.database
 * has told it to leave (it may then block on the database's lock), and
 * it is not in the back-off of a failing load.  For a committer deciding
 * whether to wait for its publish.  Cannot fail.
 */
bool
cg_loader_can_load(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		can;

	SpinLockAcquire(&cg_shared->mutex);
	can = cg_shared->loader.pid != 0 &&
		!cg_shared->loader.failing &&
		!cg_loader_away(&cg_shared->loader, now);
	SpinLockRelease(&cg_shared->mutex);
	return can;
}

/*
 * cg_loader_leave: before DROP DATABASE, ALTER DATABASE ... RENAME or SET
 * TABLESPACE, or CREATE DATABASE ... TEMPLATE of conngov.database
 * (guard.c), make the loader leave the database and keep away until
 * cg_loader_back() (at most CG_LEAVE_MS), and wait until it has left (at
 * most CG_LEAVE_WAIT_MS: core's own check then says who still uses the
 * database).  Caller: a backend, in a transaction; cancel and terminate
 * work during the wait.
 */
void
cg_loader_leave(void)
{
	TimestampTz start = GetCurrentTimestamp();
	Latch	   *latch;

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.leaving++;
	cg_shared->loader.leave_until =
		TimestampTzPlusMilliseconds(start, CG_LEAVE_MS);
	latch = cg_shared->loader.latch;
	SpinLockRelease(&cg_shared->mutex);
	if (latch)
		SetLatch(latch);

	for (;;)
	{
		bool		connected;

		SpinLockAcquire(&cg_shared->mutex);
		connected = cg_shared->loader.connected;
		SpinLockRelease(&cg_shared->mutex);
		if (!connected ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
									   CG_LEAVE_WAIT_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * cg_loader_back: the whole-database operation that called
 * cg_loader_leave() is over (done or failed): the loader may stay
 * connected again.  Cannot fail.
 */
void
cg_loader_back(void)
{
	SpinLockAcquire(&cg_shared->mutex);
	if (cg_shared->loader.leaving > 0)
		cg_shared->loader.leaving--;
	SpinLockRelease(&cg_shared->mutex);
}

/*
 * cg_loader_health: health()'s "loads" check, appended to buf (a JSON
 * array being built): whether a loader runs and is connected, the
 * requests not served yet and since when, the last load.  *ok is false
 * when a request has waited more than CG_LOAD_LATE_MS, or when a
 * standby's re-read is that late.
 */
void
cg_loader_health(StringInfo buf, bool *ok)
{
	CgLoaderState l;
	TimestampTz now = GetCurrentTimestamp();
	uint32		pending;
	TimestampTz since;
	int64		pending_ms = 0;
	int64		last_ms = -1;
	bool		standby = RecoveryInProgress();
	char	   *reason = NULL;

	SpinLockAcquire(&cg_shared->mutex);
	l = cg_shared->loader;
	SpinLockRelease(&cg_shared->mutex);
	pending = pg_atomic_read_u32(&cg_shared->reload_requested) -
		pg_atomic_read_u32(&cg_shared->reload_done);
	since = (TimestampTz) pg_atomic_read_u64(&cg_shared->pending_since);
	if (pending > 0 && since != 0 && now > since)
		pending_ms = (now - since) / 1000;
	if (l.last_load != 0 && now > l.last_load)
		last_ms = (now - l.last_load) / 1000;

	*ok = true;
	if (pending > 0 && pending_ms > CG_LOAD_LATE_MS)
	{
		*ok = false;
		reason = psprintf("a load requested " INT64_FORMAT " ms ago has not happened%s",
						  pending_ms,
						  l.pid == 0 ? " (no loader process runs)" :
						  cg_loader_away(&l, now) ? " (a whole-database operation on conngov.database is in progress)" :
						  !l.connected ? " (the loader is not connected)" : "");
	}
	else if (standby &&
			 (last_ms < 0 || last_ms > CG_STANDBY_RELOAD_MS + CG_LOAD_LATE_MS))
	{
		*ok = false;
		reason = last_ms < 0 ?
			pstrdup("the standby has not read the budgets yet") :
			psprintf("the standby last read the budgets " INT64_FORMAT " ms ago (every %d ms expected)",
					 last_ms, CG_STANDBY_RELOAD_MS);
	}

	appendStringInfo(buf,
					 ", {\"name\": \"loads\", \"status\": \"%s\", \"loader_running\": %s, "
					 "\"connected\": %s, \"pending\": %u, \"pending_ms\": " INT64_FORMAT
					 ", \"last_load_ms\": ",
					 *ok ? "ok" : "warning", l.pid != 0 ? "true" : "false",
					 l.connected ? "true" : "false", pending, pending_ms);
	if (last_ms >= 0)
		appendStringInfo(buf, INT64_FORMAT, last_ms);
	else
		appendStringInfoString(buf, "null");
	appendStringInfo(buf, ", \"standby\": %s, \"failing\": %s",
					 standby ? "true" : "false", l.failing ? "true" : "false");
	if (reason != NULL)
	{
		appendStringInfoString(buf, ", \"reason\": ");
		escape_json(buf, reason);
	}
	appendStringInfoChar(buf, '}');
}

/*---- the loader process ----*/

/*
 * cg_loader_emit_log: keep the text of an ERROR or FATAL that reaches the
 * log (one raised before the loader could catch it, such as "database ...
 * does not exist" while connecting), so that the next loader can say why
 * the load failed.
 */
static void
cg_loader_emit_log(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->message != NULL)
	{
		bool		logged;

		SpinLockAcquire(&cg_shared->mutex);
		strlcpy(cg_shared->loader.reason, edata->message, CG_REASON_LEN);
		logged = strstr(cg_shared->loader.logged, edata->message) != NULL;
		SpinLockRelease(&cg_shared->mutex);
		/* a retry that fails as the last one did: that cause is logged */
		if (logged && !cg_l.connected)
			edata->output_to_server = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * cg_loader_settings: settings that ALTER DATABASE/ROLE ... SET could have
 * given this process and that would change what it does: no search path a
 * non-superuser can write to, an isolation level a standby accepts, and a
 * bound on any lock wait (the budgets table itself is only locked if free).
 */
static void
cg_loader_settings(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "1000", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0",
					PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * cg_check_exempt_roles: warn, once per value of conngov.exempt_roles,
 * about listed names that are not roles (unquoted names are folded to
 * lower case, as in every PostgreSQL list of identifiers).
 */
static void
cg_check_exempt_roles(void)
{
	const char *name;
	uint32		h = hash_bytes((const unsigned char *) cg_exempt_roles,
							   strlen(cg_exempt_roles));

	SpinLockAcquire(&cg_shared->mutex);
	if (cg_shared->exempt_checked == h)
	{
		SpinLockRelease(&cg_shared->mutex);
		return;
	}
	cg_shared->exempt_checked = h;
	SpinLockRelease(&cg_shared->mutex);

	for (name = cg_exempt_list; name && *name; name += strlen(name) + 1)
	{
		if (!OidIsValid(get_role_oid(name, true)))
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("conngov.exempt_roles lists role \"%s\", which does not exist",
							name),
					 errhint("Names are folded to lower case unless double-quoted, as in conngov.exempt_roles = '\"DBA_Team\"'.")));
	}
}

/* Log a cause once: again only after another cause (or success). */
static void
cg_loader_log_once(const char *cause)
{
	bool		same;

	SpinLockAcquire(&cg_shared->mutex);
	same = strcmp(cause, cg_shared->loader.logged) == 0;
	if (!same)
		strlcpy(cg_shared->loader.logged, cause, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);
	if (!same && cause[0] != '\0')
		ereport(LOG,
				(errmsg("conngov: %s; nothing is enforced until the budgets can be loaded",
						cause)));
}

/*
 * cg_loader_done: request has been served (loaded, or failed): tell
 * reload() callers and committers waiting for it, and move pending_since
 * on.  A request made after this load began (its number is higher) is at
 * most as old as the load: it is stamped with the load's start.
 */
static void
cg_loader_done(uint32 request, TimestampTz started)
{
	uint64		since = pg_atomic_read_u64(&cg_shared->pending_since);

	pg_atomic_write_u32(&cg_shared->reload_done, request);
	if (pg_atomic_read_u32(&cg_shared->reload_requested) == request)
	{
		(void) pg_atomic_compare_exchange_u64(&cg_shared->pending_since,
											  &since, 0);
		/* a request that came just now found the old stamp: stamp it */
		if (pg_atomic_read_u32(&cg_shared->reload_requested) != request)
		{
			uint64		zero = 0;

			(void) pg_atomic_compare_exchange_u64(&cg_shared->pending_since,
												  &zero, (uint64) started);
		}
	}
	else
		pg_atomic_write_u64(&cg_shared->pending_since, (uint64) started);
	ConditionVariableBroadcast(&cg_shared->reload_cv);
}

/* Set the back-off: the next try in ms from now. */
static void
cg_loader_retry(TimestampTz now, int ms, bool failing)
{
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.retry_ms = ms;
	cg_shared->loader.retry_at = ms > 0 ? TimestampTzPlusMilliseconds(now, ms) : 0;
	cg_shared->loader.failing = failing;
	SpinLockRelease(&cg_shared->mutex);
}

/*
 * cg_loader_failed: a load that could not read the table (why: the
 * error's text): publish no budgets (fail open), log the cause once, back
 * off (1 s doubling to 60 s) and answer the request.
 */
static void
cg_loader_failed(const char *why, uint32 request, TimestampTz now,
				 TimestampTz started)
{
	char		cause[CG_REASON_LEN];
	int			ms;

	snprintf(cause, sizeof(cause),
			 "could not load the budgets from database \"%s\": %s",
			 cg_database, why[0] != '\0' ? why :
			 "the loader stopped without a result (see the log above)");
	cg_publish_budgets(NULL, 0, 0, RecoveryInProgress(), 0,
					   CG_STATE_FAILED, cause);
	cg_loader_log_once(cause);
	SpinLockAcquire(&cg_shared->mutex);
	ms = cg_shared->loader.retry_ms;
	SpinLockRelease(&cg_shared->mutex);
	ms = ms < CG_FAILED_RETRY_MS ? CG_FAILED_RETRY_MS :
		Min(ms * 2, CG_FAILED_RETRY_MAX_MS);
	cg_loader_retry(now, ms, true);
	cg_loader_done(request, started);
}

static void
cg_loader_detach(int code, Datum arg)
{
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.latch = NULL;
	cg_shared->loader.pid = 0;
	cg_shared->loader.connected = false;
	SpinLockRelease(&cg_shared->mutex);
}

/*
 * cg_loader_attach: publish this process as the loader, and settle what
 * the last one left: died while connecting (conngov.database is gone, or
 * was being dropped): a failed load; died during a load: try it again
 * soon.
 */
static void
cg_loader_attach(void)
{
	bool		died_connecting;
	bool		died_loading;
	uint32		serving;
	TimestampTz last_load;
	char		why[CG_REASON_LEN];
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.latch = MyLatch;
	cg_shared->loader.pid = MyProcPid;
	cg_shared->loader.connected = false;
	died_connecting = cg_shared->loader.connecting;
	cg_shared->loader.connecting = false;
	serving = cg_shared->loader.serving;
	last_load = cg_shared->loader.last_load;
	strlcpy(why, cg_shared->loader.reason, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);
	on_shmem_exit(cg_loader_detach, (Datum) 0);

	died_loading = last_load != 0 &&
		(int32) (serving - pg_atomic_read_u32(&cg_shared->reload_done)) > 0;
	if (died_connecting)
		cg_loader_failed(why, serving, now, last_load);
	else if (died_loading)
	{
		int			ms;

		/* again soon, backing off if loads keep killing the loader */
		SpinLockAcquire(&cg_shared->mutex);
		ms = cg_shared->loader.retry_ms;
		SpinLockRelease(&cg_shared->mutex);
		cg_loader_retry(now, ms <= 0 ? CG_LOCKED_RETRY_MS :
						Min(ms * 2, CG_FAILED_RETRY_MAX_MS), false);
	}
}

/*
 * cg_loader_connect: connect to conngov.database, once in the process's
 * life.  A FATAL here (no such database, a DROP of it just committed)
 * ends the process; the next loader reports it (cg_loader_attach).
 */
static void
cg_loader_connect(void)
{
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.connecting = true;
	cg_shared->loader.reason[0] = '\0';
	SpinLockRelease(&cg_shared->mutex);

	BackgroundWorkerInitializeConnection(cg_database, NULL,
										 BGWORKER_BYPASS_ALLOWCONN);
	cg_loader_settings();
	cg_l.connected = true;

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.connecting = false;
	cg_shared->loader.connected = true;
	SpinLockRelease(&cg_shared->mutex);
}

/*
 * Errors that change nothing and are worth an early retry: a lock we
 * could not get in time, a read cancelled (by a recovery conflict on a
 * standby, or by a DBA).
 */
static bool
cg_loader_transient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * cg_loader_read: one load, in one transaction of its own (so it sees
 * committed rows only).  An ERROR is caught and returned as the result
 * with its text in reason, not logged.
 */
static CgLoadResult
cg_loader_read(char *reason, bool standby)
{
	CgLoadResult result;
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "loading budgets");
		result = cg_load_budgets(reason, standby);
		cg_l.budgets_relid = cg_budgets_relid();
		cg_check_exempt_roles();
		/* conngov.exempt_roles applies to open sessions too */
		cg_recheck_exempt();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
		result = cg_loader_transient(edata->sqlerrcode) ?
			CG_LOAD_LOCKED : CG_LOAD_FAILED;
		strlcpy(reason, edata->message ? edata->message : "unknown error",
				CG_REASON_LEN);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/*
 * cg_loader_serve: load for request now, connecting first if needed, and
 * act on the result.
 */
static void
cg_loader_serve(uint32 request, TimestampTz now)
{
	char		reason[CG_REASON_LEN];
	int			ms;
	TimestampTz published;
	bool		changed;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	published = cg_shared->loaded_at;
	LWLockRelease(cg_shared->lock);

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader.serving = request;
	cg_shared->loader.last_load = now;
	ms = cg_shared->loader.retry_ms;
	SpinLockRelease(&cg_shared->mutex);
	cg_l.reload_now = false;
	cg_l.changed = false;

	if (!cg_l.connected)
		cg_loader_connect();

	/* read before the load: a promotion during it makes another one */
	switch (cg_loader_read(reason, RecoveryInProgress()))
	{
		case CG_LOAD_DONE:
			/* loaded, or no table / not the extension's: reason says */
			cg_loader_retry(now, 0, false);
			cg_loader_log_once(reason);
			cg_loader_done(request, now);
			break;
		case CG_LOAD_LOCKED:
			/* nothing changed; again soon, reload() and commits wait */
			cg_loader_retry(now, ms <= 0 ? CG_LOCKED_RETRY_MS :
							Min(ms * 2, 1000), false);
			break;
		case CG_LOAD_FAILED:
			cg_loader_failed(reason, request, now, now);
			break;
	}
	/* a publish may have changed the idle timeouts the worker sleeps on */
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	changed = cg_shared->loaded_at != published;
	LWLockRelease(cg_shared->lock);
	if (changed)
		cg_wake_worker();
}

/* Whether the budgets in force were loaded for a node in recovery. */
static bool
cg_loaded_standby(void)
{
	bool		standby;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	standby = cg_shared->loaded_standby;
	LWLockRelease(cg_shared->lock);
	return standby;
}

/*
 * cg_loader_relcache_cb: a relcache invalidation came (on a standby, sent
 * by the replay of a commit that changed conngov.budgets, whose trigger
 * asked for one: notify.c): load at once.  All relations (InvalidOid),
 * and any relation while there is no table, count.
 */
static void
cg_loader_relcache_cb(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(cg_l.budgets_relid) ||
		relid == cg_l.budgets_relid)
		cg_l.changed = true;
}

/*
 * cg_loader_look: on a standby, take the invalidations that replay sent
 * (an empty transaction takes them, as core does for a catch-up signal).
 */
static void
cg_loader_look(void)
{
	StartTransactionCommand();
	CommitTransactionCommand();
}

/*
 * cg_loader_due: whether a load is due now: the first one since server
 * start, after SIGHUP, a request not served yet (at once for a change of
 * rows or reload(), else CG_DDL_RELOAD_MS after the last load), a retry
 * whose time has come, and every CG_STANDBY_RELOAD_MS on a standby.  Else
 * *wake gets the time it will be due (0: when a request comes).
 */
static bool
cg_loader_due(uint32 request, bool standby, TimestampTz now, TimestampTz *wake)
{
	CgLoaderState l;

	SpinLockAcquire(&cg_shared->mutex);
	l = cg_shared->loader;
	SpinLockRelease(&cg_shared->mutex);

	*wake = 0;
	/* a primary's loads come by request; its invalidations are its own */
	if (l.last_load == 0 || cg_l.reload_now || (standby && cg_l.changed))
		return true;
	/* promoted since the last load: the primary's budgets apply now */
	if (l.retry_at == 0 && cg_loaded_standby() != standby)
		return true;
	if ((int32) (request - l.serving) > 0)
	{
		uint32		ryw = pg_atomic_read_u32(&cg_shared->ryw_requested);

		if ((int32) (ryw - l.serving) > 0)
			return true;
		*wake = TimestampTzPlusMilliseconds(l.last_load, CG_DDL_RELOAD_MS);
	}
	else if (l.retry_at != 0)
		*wake = l.retry_at;
	else if (standby)
		*wake = TimestampTzPlusMilliseconds(l.last_load, CG_STANDBY_RELOAD_MS);
	return *wake != 0 && now >= *wake;
}

/*
 * cg_loader_must_leave: a whole-database operation on conngov.database is
 * beginning: a connected loader exits (the postmaster starts a new,
 * unconnected one).
 */
static void
cg_loader_must_leave(TimestampTz now)
{
	bool		leave;

	if (!cg_l.connected)
		return;
	SpinLockAcquire(&cg_shared->mutex);
	leave = cg_loader_away(&cg_shared->loader, now);
	SpinLockRelease(&cg_shared->mutex);
	if (leave)
		proc_exit(1);			/* 1: the postmaster starts a new one */
}

void
cg_loader_main(Datum main_arg)
{
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext loop_ctx;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = cg_loader_emit_log;

	memset(&cg_l, 0, sizeof(cg_l));
	loop_ctx = AllocSetContextCreate(TopMemoryContext, "conngov loader",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(loop_ctx);
	cg_loader_attach();
	CacheRegisterRelcacheCallback(cg_loader_relcache_cb, (Datum) 0);

	/*
	 * An ERROR outside a load (a load's own are caught in cg_loader_read)
	 * comes back here: report it, clean up and go on after a pause that
	 * doubles while errors repeat.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
		cg_recover_from_error(loop_ctx, &cg_l.error_pause_ms);
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		uint32		request;
		TimestampTz now;
		TimestampTz wake;
		long		timeout;
		bool		standby;

		/* SIGHUP: load again (conngov.exempt_roles may have changed) */
		if (cg_loop_begin(loop_ctx))
			cg_l.reload_now = true;

		now = GetCurrentTimestamp();
		cg_loader_must_leave(now);
		standby = RecoveryInProgress();
		if (standby && cg_l.connected)
			cg_loader_look();
		request = pg_atomic_read_u32(&cg_shared->reload_requested);
		if (cg_loader_due(request, standby, now, &wake))
		{
			cg_loader_serve(request, now);
			cg_l.error_pause_ms = 0;
			continue;			/* leave, or look again, before sleeping */
		}
		cg_l.error_pause_ms = 0;

		if (wake == 0)
			timeout = CG_MAX_SLEEP_MS;
		else if (wake <= now)
			timeout = 0;
		else
			timeout = (long) Min((wake - now + 999) / 1000,
								 (int64) CG_MAX_SLEEP_MS);
		/* a standby looks for replayed changes and for its promotion */
		if (standby && cg_l.connected)
			timeout = Min(timeout, CG_STANDBY_POLL_MS);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, cg_wait_event_main());
		ResetLatch(MyLatch);
	}
}
