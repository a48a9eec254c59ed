/*-------------------------------------------------------------------------
 *
 * conngov.h
 *		Shared types, settings and prototypes of conngov, grouped by the
 *		file that defines them.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/conngov.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNGOV_H
#define CONNGOV_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "postmaster/bgworker.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#define CG_TRANCHE_NAME		"conngov"
#define CG_WORKER_NAME		"conngov worker"
#define CG_LOADER_NAME		"conngov loader"
/* Longest reason kept for a failed load (health(), the log). */
#define CG_REASON_LEN		256
/* Idle timeouts are capped at 100 years (in ms): longer ones mean never. */
#define CG_MAX_TIMEOUT_MS	INT64CONST(3155760000000)
#define CG_UNBUDGETED_NAME	"(unbudgeted)"

/* A budget's charge target when no budget matched. */
#define CG_UNBUDGETED		(-1)
/* A session slot that is not charged at all. */
#define CG_NOT_CHARGED		(-2)

/* conngov.log_refusals */
typedef enum CgLogRefusals
{
	CG_LOG_REFUSALS_OFF,
	CG_LOG_REFUSALS_ON,
	CG_LOG_REFUSALS_SAMPLED
} CgLogRefusals;

/* conngov.ending_sqlstate */
typedef enum CgEndingSqlstate
{
	CG_ENDING_ADMIN,			/* 57P01, like pg_terminate_backend */
	CG_ENDING_TIMEOUT			/* 57P05 / 25P03, like PostgreSQL's timeouts */
} CgEndingSqlstate;

/* conngov.mode and conngov.budgets.mode */
typedef enum CgMode
{
	CG_MODE_OFF,
	CG_MODE_MONITOR,
	CG_MODE_ENFORCE
} CgMode;

/*
 * Where the budgets stand (CgSharedState.state).  In every state but
 * LOADED nothing is enforced: logins are admitted (fail open).
 */
typedef enum CgLoadState
{
	CG_STATE_UNLOADED,			/* worker has not read the table yet */
	CG_STATE_LOADED,			/* budgets[] is the table's content */
	CG_STATE_NO_TABLE,			/* extension not installed: nothing to enforce */
	CG_STATE_UNTRUSTED,			/* a conngov.budgets not made by CREATE
								 * EXTENSION, or of the wrong shape */
	CG_STATE_FAILED				/* could not be read (database gone ...) */
} CgLoadState;

/* What a loader process reports (CgSharedState.loader_result). */
typedef enum CgLoadResult
{
	CG_LOAD_RUNNING,			/* no report yet: it died if it is gone */
	CG_LOAD_DONE,				/* published (state and reason say what) */
	CG_LOAD_LOCKED,				/* the table was locked: nothing changed */
	CG_LOAD_FAILED				/* an error: reason says which */
} CgLoadResult;

typedef enum CgEventKind
{
	CG_EVENT_REFUSED,
	CG_EVENT_WOULD_REFUSE,
	CG_EVENT_ENDED_IDLE,
	CG_EVENT_WOULD_END_IDLE,
	CG_EVENT_BUDGETS_RELOADED
} CgEventKind;

/*
 * Per-budget counters.  Atomics, so that the login path and the worker bump
 * them under the shared lock (or none) without contention.
 */
typedef struct CgCounters
{
	pg_atomic_uint32 total;		/* sessions charged now */
	pg_atomic_uint32 peak;		/* highest total since stats reset */
	pg_atomic_uint64 admitted;
	pg_atomic_uint64 refused;
	pg_atomic_uint64 would_refuse;
	pg_atomic_uint64 ended_idle;
	pg_atomic_uint64 would_end_idle;
	pg_atomic_uint64 last_refused_at;	/* TimestampTz, 0 = never */
} CgCounters;

/* Counter values carried over a publish (plain copies of CgCounters). */
typedef struct CgCounterValues
{
	uint32		peak;
	uint64		admitted;
	uint64		refused;
	uint64		would_refuse;
	uint64		ended_idle;
	uint64		would_end_idle;
	uint64		last_refused_at;
} CgCounterValues;

/*
 * One compiled budget: a row of conngov.budgets.  The text fields are
 * limited to NAMEDATALEN - 1 bytes by the table's constraints.  Everything
 * before "c" is the policy; "c" only exists in shared memory (copies made
 * while loading leave it untouched).
 */
typedef struct CgBudget
{
	char		name[NAMEDATALEN];
	char		pattern[NAMEDATALEN];
	char		role_name[NAMEDATALEN]; /* "" = any role */
	char		database_name[NAMEDATALEN]; /* "" = any database */
	int32		max_connections;
	int32		priority;
	bool		monitor;		/* budget mode = 'monitor' */
	int64		idle_timeout_ms;	/* 0 = never */
	int64		idle_in_xact_timeout_ms;	/* 0 = never */
	int32		idle_keep;
	CgCounters	c;
} CgBudget;

/*
 * One slot per client backend, indexed by its PGPROC number: the identity a
 * session logged in with and the budget it is charged to.  The owner fills
 * the identity before setting pid (with a write barrier), and clears pid
 * first at exit, so readers under the shared lock see whole slots.
 */
typedef struct CgSession
{
	int			pid;			/* 0 = free */
	int			budget;			/* index, CG_UNBUDGETED or CG_NOT_CHARGED */
	bool		exempt;
	TimestampTz idle_noted_since;	/* worker: idle period already handled */
	bool		idle_noted_ended;	/* ... by ending it (else: recorded) */
	char		application_name[NAMEDATALEN];	/* from the startup packet */
	char		role_name[NAMEDATALEN];
	char		database_name[NAMEDATALEN];

	/* the owner ran LISTEN: never ended for idleness (statements.c) */
	bool		listening;

	/*
	 * An idle ending in progress, written by whoever ends the session (the
	 * worker or sweep()) before it signals, for the owner's FATAL message:
	 * end_pid is set last (write barrier) and names the session it is for.
	 */
	int			end_pid;		/* 0 = no idle ending */
	bool		end_in_xact;	/* idle in transaction */
	bool		end_timeout_code;	/* conngov.ending_sqlstate = timeout */
	int64		end_idle_ms;
	int64		end_timeout_ms;
	char		end_budget[NAMEDATALEN];
} CgSession;

/*
 * conngov.log_refusals = sampled: per budget (by name, in a small table
 * hashed by name; a collision only costs one more full line), when the
 * last line was written and how many refusals were not logged since.
 */
#define CG_REFUSAL_LOG_SLOTS	64
typedef struct CgRefusalLog
{
	char		budget[NAMEDATALEN];
	TimestampTz logged_at;		/* 0 = never */
	uint32		unlogged;
} CgRefusalLog;

/* One entry of the events ring. */
typedef struct CgEvent
{
	TimestampTz at;
	CgEventKind kind;
	int			pid;
	char		budget[NAMEDATALEN];
	char		role_name[NAMEDATALEN];
	char		database_name[NAMEDATALEN];
	char		application_name[NAMEDATALEN];
	char		client_addr[64];
	char		detail[128];
} CgEvent;

/*
 * The shared state.  Lock rules:
 *
 * - lock (LWLock, tranche "conngov"): EXCLUSIVE to publish budgets (state,
 *   nbudgets, budgets[] contents, re-matching sessions[]); SHARED to read
 *   budgets or to charge/release a session, whose counters are atomics.
 * - events_lock (LWLock, same tranche): the events ring and event_next;
 *   EXCLUSIVE to append, SHARED to read.
 * - mutex (spinlock): worker_latch, worker_pid, loader_result and
 *   loader_reason (written by the loader, read by the worker), and
 *   load_reason (written by the worker and the loader, read by health()),
 *   refusal_log (refused logins, conngov.log_refusals = sampled).
 * - reload_requested/reload_done: atomics; reload_cv wakes reload() callers.
 */
typedef struct CgSharedState
{
	LWLock	   *lock;
	LWLock	   *events_lock;
	slock_t		mutex;

	/* budgets, under lock (load_reason under mutex) */
	CgLoadState state;
	char		load_reason[CG_REASON_LEN];	/* why not LOADED, "" if known */
	int			nbudgets;
	int			nbudgets_table; /* rows in the table (> nbudgets if full) */
	TimestampTz loaded_at;
	TimestampTz stats_reset;

	/* reload handshake */
	pg_atomic_uint32 reload_requested;
	pg_atomic_uint32 reload_done;
	ConditionVariable reload_cv;

	/* worker and its loader, under mutex */
	Latch	   *worker_latch;
	int			worker_pid;
	CgLoadResult loader_result;
	char		loader_reason[CG_REASON_LEN];
	uint32		exempt_checked; /* hash of the exempt_roles last checked */

	/* unbudgeted sessions */
	CgCounters	unbudgeted;

	/* events ring, under events_lock */
	uint64		event_next;		/* events ever written */

	/* conngov.log_refusals = sampled, under mutex */
	CgRefusalLog refusal_log[CG_REFUSAL_LOG_SLOTS];
} CgSharedState;

/* A budget's figures, copied out under the lock (usage(), health()). */
typedef struct CgUsageRow
{
	char		name[NAMEDATALEN];
	bool		monitor;
	int32		max_connections;	/* -1: the unbudgeted row */
	uint32		total;
	uint32		peak;
	TimestampTz last_refused_at;	/* 0 = never */
} CgUsageRow;

/* One session an idle sweep ended, or would end. */
typedef struct CgSweepResult
{
	int			pid;
	char		budget[NAMEDATALEN];
	char		application_name[NAMEDATALEN];
	char		role_name[NAMEDATALEN];
	char		database_name[NAMEDATALEN];
	bool		in_xact;
	int64		idle_ms;
	int64		timeout_ms;
	bool		ended;			/* false: would end (monitor) */
	bool		permitted;		/* false: the caller may not signal it */
} CgSweepResult;

/*---- conngov.c: settings ----*/
extern char *cg_database;
extern int	cg_mode;
extern char *cg_exempt_roles;
extern double cg_warn_ratio;
extern double cg_critical_ratio;
extern int	cg_max_budgets;
extern int	cg_event_capacity;
extern int	cg_log_refusals;
extern int	cg_ending_sqlstate;
extern int	cg_refusal_window;
extern const char *cg_exempt_list;

/*---- shmem.c ----*/
extern CgSharedState *cg_shared;
extern CgBudget *cg_budgets;
extern CgSession *cg_sessions;
extern CgEvent *cg_events;
extern int	cg_nsessions;
extern void cg_shmem_init_hooks(void);
extern void cg_require_shared_state(void);
extern CgCounters *cg_counters(int budget);
extern bool cg_charge(CgCounters *c, int64 limit, uint32 *in_use);
extern int	cg_copy_usage(CgUsageRow **rows, CgLoadState *state);
extern void cg_add_event(CgEventKind kind, const char *budget, int pid,
						 const char *role_name, const char *database_name,
						 const char *application_name, const char *client_addr,
						 const char *detail);
extern void cg_wake_worker(void);

/*---- match.c ----*/
extern bool cg_like_match(const char *text, const char *pattern);
extern int	cg_match_budget(const char *application_name, const char *role_name,
							const char *database_name);

/*---- budgets.c ----*/
extern CgLoadResult cg_load_budgets(char *reason);
extern void cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
							   CgLoadState state, const char *reason);
extern int64 cg_interval_to_ms(const Interval *iv);
extern const char *cg_status(uint32 total, int32 max_connections);
extern const char *cg_budget_status(uint32 total, int32 max_connections,
									TimestampTz last_refused_at);

/*---- loader.c ----*/
extern bool cg_start_loader(BackgroundWorkerHandle **handle);
extern PGDLLEXPORT void cg_loader_main(Datum main_arg);

/*---- guard.c ----*/
extern void cg_guard_init(void);

/*---- monitor.c ----*/
extern int	cg_normal_slots(void);

/*---- notify.c ----*/
extern bool cg_changes_pending(void);
extern void cg_await_publish(void);
extern void cg_notify_init(void);

/*---- auth.c ----*/
extern void cg_auth_init(void);
extern CgSession *cg_my_session(void);
extern void cg_recharge_if_renamed(void);
extern void cg_recheck_exempt(void);

/*---- statements.c ----*/
extern bool cg_naming_open;
extern void cg_statements_init(void);

/*---- worker.c ----*/
extern void cg_register_worker(void);
extern PGDLLEXPORT void cg_worker_main(Datum main_arg);

/*---- idle.c ----*/
extern TimestampTz cg_sweep(bool dry_run, Oid as_role,
							CgSweepResult **results, int *nresults);

#endif							/* CONNGOV_H */
