/*-------------------------------------------------------------------------
 *
 * loader.c
 *		The conngov loader: a short-lived background worker that reads
 *		conngov.budgets once and reports how it went.
 *
 * The long-lived worker (worker.c) is connected to no database, so
 * conngov.database stays free for DROP DATABASE, ALTER DATABASE ...
 * RENAME, CREATE DATABASE ... TEMPLATE and pg_upgrade.  For each load it
 * starts one of these: it connects to conngov.database as the bootstrap
 * superuser, pins the settings a database or role default could otherwise
 * give it (search_path, isolation level, lock_timeout), loads and
 * publishes (budgets.c), writes its result into shared memory and exits.
 * An ERROR is caught and reported, not logged: the worker logs each
 * distinct cause once.  A FATAL that cannot be caught (the database is
 * gone) still leaves its message, through emit_log_hook, for the worker.
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
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "conngov.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * cg_start_loader: register a loader that tells this process (the worker)
 * when it stops.  Returns false when no background worker slot is free.
 * *handle is allocated in TopMemoryContext.
 */
bool
cg_start_loader(BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	MemoryContext old;
	bool		ok;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "conngov", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "cg_loader_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, CG_LOADER_NAME, BGW_MAXLEN);
	strlcpy(worker.bgw_type, CG_LOADER_NAME, BGW_MAXLEN);
	worker.bgw_notify_pid = MyProcPid;

	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader_result = CG_LOAD_RUNNING;
	cg_shared->loader_reason[0] = '\0';
	SpinLockRelease(&cg_shared->mutex);

	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&worker, handle);
	MemoryContextSwitchTo(old);
	return ok;
}

static void
cg_loader_report(CgLoadResult result, const char *reason)
{
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->loader_result = result;
	strlcpy(cg_shared->loader_reason, reason, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);
}

/*
 * cg_loader_emit_log: keep the text of an ERROR or FATAL that reaches the
 * log (one raised before the loader could catch it, such as "database ...
 * does not exist"), so that the worker can say why the load failed.
 */
static void
cg_loader_emit_log(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->message != NULL)
		cg_loader_report(CG_LOAD_RUNNING, edata->message);
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

void
cg_loader_main(Datum main_arg)
{
	char		reason[CG_REASON_LEN];
	CgLoadResult result;
	MemoryContext ctx = CurrentMemoryContext;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = cg_loader_emit_log;

	BackgroundWorkerInitializeConnection(cg_database, NULL, 0);
	cg_loader_settings();

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "loading budgets");
		result = cg_load_budgets(reason);
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
		/* a lock we could not get in time changes nothing: try again */
		result = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ?
			CG_LOAD_LOCKED : CG_LOAD_FAILED;
		strlcpy(reason, edata->message ? edata->message : "unknown error",
				CG_REASON_LEN);
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	cg_loader_report(result, reason);
	proc_exit(0);
}

/*
 * cg_loader_can_load: whether a load requested now can happen at all, so
 * that a COMMIT of a change to the budgets does not wait for one that
 * cannot (notify.c).  Today the worker starts a loader for each request:
 * a load can run while the worker runs (it does not during binary-upgrade
 * mode, nor while the postmaster restarts it).  Takes the spinlock; cannot
 * fail, so it may be called in a commit callback.
 */
bool
cg_loader_can_load(void)
{
	bool		running;

	if (cg_shared == NULL)
		return false;
	SpinLockAcquire(&cg_shared->mutex);
	running = (cg_shared->worker_pid != 0);
	SpinLockRelease(&cg_shared->mutex);
	return running;
}
