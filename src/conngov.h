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

#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "postmaster/bgworker.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/relcache.h"

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

/* The budgets readers use; caller holds cg_shared->lock (shared). */
#define cg_budgets			(cg_budget_sets[cg_shared->active])

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

/* How one load went (cg_load_budgets, loader.c). */
typedef enum CgLoadResult
{
	CG_LOAD_DONE,				/* published (state and reason say what) */
	CG_LOAD_LOCKED,				/* the table was locked, or the read was
								 * cancelled: nothing changed, try again */
	CG_LOAD_FAILED				/* an error: reason says which */
} CgLoadResult;

/*
 * The loader's state in shared memory, so that it outlives a loader
 * process (one that left for a whole-database operation, or died while
 * connecting).  Written by the loader under cg_shared->mutex, except
 * leaving and leave_until (a backend running a whole-database operation
 * on conngov.database) and reason (the loader's emit_log_hook).
 */
typedef struct CgLoaderState
{
	Latch	   *latch;			/* the loader's latch, NULL when none runs */
	int			pid;			/* 0 = no loader process */
	bool		connected;		/* connected to conngov.database */
	bool		connecting;		/* connecting: a loader that died then failed */
	uint32		serving;		/* request the load in progress serves */
	TimestampTz last_load;		/* start of the last load (0 = none yet) */
	TimestampTz retry_at;		/* back-off: next try (0 = none) */
	int			retry_ms;		/* current back-off */
	bool		failing;		/* the last load failed */
	int			leaving;		/* whole-database operations running ... */
	TimestampTz leave_until;	/* ... and the latest end of the last one */
	char		reason[CG_REASON_LEN];	/* the last ERROR/FATAL text seen */
	char		logged[CG_REASON_LEN];	/* the last cause logged */
} CgLoaderState;

typedef enum CgEventKind
{
	CG_EVENT_REFUSED,
	CG_EVENT_WOULD_REFUSE,
	CG_EVENT_ENDED_IDLE,
	CG_EVENT_WOULD_END_IDLE,
	CG_EVENT_BUDGETS_RELOADED,
	CG_EVENT_REFUSED_FOR_FLOORS,	/* 1.1: the free slots are others' floors */
	CG_EVENT_WOULD_REFUSE_FOR_FLOORS,
	CG_EVENT_WAITED,			/* 1.1: admitted after waiting (login_wait) */
	CG_EVENT_WAIT_TIMEOUT,		/* 1.1: refused after waiting login_wait */
	CG_EVENT_REFUSED_RATE,		/* 1.2: over the budget's login_rate */
	CG_EVENT_WOULD_REFUSE_RATE,
	CG_EVENT_PACED,				/* 1.2: admitted after waiting for its token */
	CG_EVENT_ENDED_LOWERED		/* 1.2: idle, ended for a lowered limit */
} CgEventKind;

/* Floor budgets named in a refusal's DETAIL and kept in floor_list. */
#define CG_MAX_FLOOR_LIST	64
/* A waiting login checks its client and its deadline at least this often. */
#define CG_WAIT_TICK_MS		500

/*
 * max_waiting NULL (1.2): at most this many logins of a budget wait, and
 * never more than the budget allows connections.  Each waiting login holds
 * a server process slot for up to login_wait, so the default must stay
 * small against the server's slots whatever the budget's size: 5 absorbs
 * a pool's reconnect burst (HikariCP and SQLAlchemy refill one connection
 * at a time per pool) without letting a large budget's storm fill the
 * server.  A DBA who wants more says so, and the table checks that all
 * the waits and floors fit the server (cg_check_waits_fit).
 */
#define CG_DEFAULT_MAX_WAITING	5

static inline int32
cg_default_max_waiting(int32 max_connections)
{
	return Min(max_connections, CG_DEFAULT_MAX_WAITING);
}

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
	/* 1.1: floors and waits (floors.c, waitq.c) */
	pg_atomic_uint64 refused_for_floors;
	pg_atomic_uint64 waited;	/* logins that waited, however it ended */
	pg_atomic_uint64 wait_us_total; /* microseconds waited, all of them */
	pg_atomic_uint64 wait_timeouts;
	pg_atomic_uint32 waiting;	/* logins waiting now (moved at publish) */

	/*
	 * 1.2: the logins waiting for a place, oldest first: a doubly linked
	 * list of session slots (CgSession.wait_next/wait_prev), -1 = none.
	 * Changed under wait_mutex by processes that hold cg_shared->lock
	 * shared, or by a publish holding it exclusively (no spinlock needed
	 * then).  wait_mutex is initialised once at start-up, never at
	 * publish.
	 */
	slock_t		wait_mutex;
	int32		wait_head;
	int32		wait_tail;

	/*
	 * 1.2: login_rate (ratelimit.c).  rate_tat is the GCRA's theoretical
	 * arrival time of the next login, nanoseconds of CLOCK_MONOTONIC (0: the
	 * bucket is full): changed by compare-and-swap only, no lock, and kept
	 * across publishes with the slot.  lower_pending: a publish lowered the
	 * budget's limit and its on_lower is end_idle; the worker takes it
	 * (lower.c).
	 */
	pg_atomic_uint64 rate_tat;
	pg_atomic_uint64 refused_rate;
	pg_atomic_uint64 paced;
	pg_atomic_uint64 ended_lowered;
	pg_atomic_uint32 lower_pending;
	/* 1.2: this minute's and the last one's peak, tag | total (history.c) */
	pg_atomic_uint64 minute[2];
} CgCounters;

/*
 * One compiled budget: a row of conngov.budgets.  The text fields are
 * limited to NAMEDATALEN - 1 bytes by the table's constraints.  Everything
 * before "slot" is the policy; the rest is filled when it is published.
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
	/* 1.1; a 1.0 table loads as 0, 0, max_connections */
	int32		min_connections;	/* guaranteed floor, 0..max_connections */
	int64		login_wait_ms;	/* 0 = refuse at once */
	int32		max_waiting;	/* waiting logins at most (NULL:
								 * cg_default_max_waiting()) */
	/* 1.2; a 1.0 or 1.1 table loads as no rate limit, refuse_new */
	float4		login_rate;		/* admitted logins per second, 0 = no limit */
	int32		login_burst;	/* NULL: the rate rounded up, at least 1 */
	int64		rate_interval_ns;	/* 1e9 / login_rate, rounded up */
	int64		rate_tolerance_ns;	/* (login_burst - 1) * rate_interval_ns */
	bool		on_lower_end_idle;	/* on_lower = 'end_idle' */
	/* set when published */
	int32		slot;			/* its counters: cg_slots[slot] */
	int32		next;			/* next budget (in matching order) with the
								 * same index key, or -1 */
	int32		prefix_len;		/* bytes of the pattern's literal prefix */
} CgBudget;

/*
 * A budget's counters and its name, kept across publishes as long as a
 * budget of that name is loaded.  A session is charged to a slot, so a
 * publish never has to recount the sessions of budgets that stay.
 * index[k] is the budget's position in budget set k, or -1.
 */
typedef struct CgSlot
{
	char		name[NAMEDATALEN];
	int32		index[2];
	CgCounters	c;
} CgSlot;

/*
 * One of the two budget sets.  Readers use the active one under the shared
 * lock; the publisher fills the other one with no lock held (nobody reads
 * it) and makes it active with the lock held exclusively for that flip
 * only.  The arrays live in shared memory after CgSharedState (see
 * shmem.c): budgets[max_budgets] in matching order, and the index: an
 * open-addressing hash table of hash_mask + 1 entries, each the first
 * budget of a chain of budgets with one key (role, database, literal
 * prefix of the pattern), or -1.
 */
typedef struct CgBudgetSet
{
	int			nbudgets;
	int			nrows;			/* rows in the table (> nbudgets if full) */
	uint64		prefix_lengths; /* bit L: some key prefix is L bytes long */
	int64		min_timeout_ms; /* shortest idle timeout, 0 = none */
	int64		budgeted_total; /* sum of enforce budgets' max_connections */
	int			nfloors;		/* enforce budgets with min_connections > 0 */
	int64		floors_sum;		/* their min_connections added up */
} CgBudgetSet;

/* A process-local view of one budget set's arrays (match.c). */
typedef struct CgIndex
{
	CgBudget   *budgets;
	int32	   *hash;
	uint32		hash_mask;
	int32	   *floors;			/* the set's floor budgets (nfloors) */
} CgIndex;

/*
 * One slot per client backend, indexed by its PGPROC number: the identity a
 * session logged in with and the counter slot it is charged to.  The owner
 * fills the identity before setting pid (with a write barrier), and clears
 * pid first at exit, so readers under the shared lock see whole slots.
 * "charge" (a CgSlot index, CG_UNBUDGETED or CG_NOT_CHARGED) changes only
 * by compare-and-swap: the owner takes it at exit, a publisher moves it to
 * another slot (cg_session_move).
 */
typedef struct CgSession
{
	int			pid;			/* 0 = free */
	pg_atomic_uint32 charge;	/* see cg_session_charge() */
	pg_atomic_uint32 name_seq;	/* odd while application_name changes */
	bool		exempt;
	TimestampTz idle_noted_since;	/* worker: idle period already handled */
	bool		idle_noted_ended;	/* ... by ending it (else: recorded) */
	char		application_name[NAMEDATALEN];	/* the startup packet's, or the
											 * late name it is charged by */
	char		role_name[NAMEDATALEN];
	char		database_name[NAMEDATALEN];
	/*
	 * 1.1, a login waiting for a place (login_wait): its ticket (0 = not
	 * waiting; tickets grow, so the smallest is the oldest) and the counter
	 * slot of the budget it waits for (CG_UNBUDGETED: admitted unbudgeted
	 * at its next look).  Written by the owner under the shared lock, and
	 * wait_slot by a publish under the exclusive lock when the budget it
	 * waits for is gone (re-matching).  pid stays 0 while a login waits: a
	 * waiter is not a session yet; a session renamed late (1.2) waits with
	 * its pid set and its old charge kept.
	 */
	pg_atomic_uint64 wait_ticket;
	int			wait_slot;
	/* 1.2: its neighbours in that slot's queue (CgCounters.wait_head) */
	int32		wait_prev;
	int32		wait_next;
	/*
	 * 1.2: the name it waits under (a publish re-matches waiters by it):
	 * the login's name, or the late name of a session that waits to be
	 * re-charged.  Written by the owner before it takes its ticket.
	 */
	char		wait_name[NAMEDATALEN];

	/* the owner ran LISTEN: never ended for idleness (statements.c) */
	bool		listening;

	/*
	 * An idle ending in progress, written by whoever ends the session (the
	 * worker or sweep()) before it signals, for the owner's FATAL message:
	 * end_pid is set last (write barrier) and names the session it is for.
	 */
	int			end_pid;		/* 0 = no idle ending */
	bool		end_lowered;	/* 1.2: ended for a lowered limit (lower.c) */
	int32		end_limit;		/* ... the new limit */
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
 * - lock (LWLock, tranche "conngov"): EXCLUSIVE only to flip the active
 *   budget set (active, state, nbudgets, nbudgets_table, loaded_at, the
 *   floors' aggregates) and, with it, re-match the logins waiting for a
 *   place and recompute floors_unused: work in the number of waiting
 *   logins and of floor budgets, never of budgets; SHARED to read the
 *   active set or to charge, release or move a session, whose counters
 *   are atomics.
 * - publish_lock (LWLock, same tranche): EXCLUSIVE while a publisher fills
 *   the inactive set and re-matches sessions; never taken by a login.
 * - events_lock (LWLock, same tranche): the events ring and event_next;
 *   EXCLUSIVE to append, SHARED to read.
 * - mutex (spinlock): worker_latch, worker_pid, loader (CgLoaderState:
 *   written by the loader, read by health(), cg_loader_can_load() and the
 *   whole-database guard, which writes leaving and leave_until), load_reason (written
 *   by the loader, read by health()), refusal_log (refused logins,
 *   conngov.log_refusals = sampled).
 * - reload_requested/reload_done/ryw_requested/pending_since: atomics
 *   (cg_request_load() bumps the first, the loader the second once it
 *   has served a request, successfully or not); reload_cv wakes reload()
 *   callers and commits waiting for a row change to be published.
 * - 1.1: has_floors, floors_sum, nfloors, floor_list under lock (written
 *   by a publish); floors_unused, wait_ticket_next and nwaiting (the
 *   sessions holding a wait ticket) are atomics changed under the shared
 *   lock (and set by a publish).
 * - 1.2: a counter slot's queue of waiting logins (wait_head, wait_tail,
 *   and the sessions' wait_prev/wait_next) under the slot's wait_mutex,
 *   taken with lock held shared; a publish, holding lock exclusively,
 *   changes queues without it.  A release sets the latch of the oldest
 *   waiter only (waitq.c); the waiting logins sleep on their own latch
 *   holding no lock.
 */
typedef struct CgSharedState
{
	LWLock	   *lock;
	LWLock	   *events_lock;
	LWLock	   *publish_lock;
	slock_t		mutex;

	/* budgets, under lock (load_reason under mutex) */
	CgLoadState state;
	char		load_reason[CG_REASON_LEN];	/* why not LOADED, "" if known */
	int			active;			/* the budget set readers use: 0 or 1 */
	CgBudgetSet set[2];
	int			nbudgets;		/* = set[active].nbudgets */
	int			nbudgets_table; /* = set[active].nrows */
	bool		loaded_standby; /* 1.2: loaded for a node in recovery */
	int			nbudgets_other; /* 1.2: rows left out for their node_role */
	TimestampTz loaded_at;
	TimestampTz stats_reset;

	/* reload handshake */
	pg_atomic_uint32 reload_requested;
	pg_atomic_uint32 ryw_requested; /* the request of the last row change */
	pg_atomic_uint32 reload_done;
	ConditionVariable reload_cv;
	pg_atomic_uint64 pending_since; /* TimestampTz of the oldest request not
									 * served yet, 0 = none (health()) */

	/* worker and loader, under mutex */
	Latch	   *worker_latch;
	int			worker_pid;
	CgLoaderState loader;
	uint32		exempt_checked; /* hash of the exempt_roles last checked */

	/* unbudgeted sessions */
	CgCounters	unbudgeted;

	/*
	 * 1.1 floors, set by cg_publish_aggregates() at the flip.
	 * floors_unused is the sum over enforce budgets of max(0,
	 * min_connections - total), kept exact by cg_charge_slot() and
	 * cg_release_slot(); floor_list names the first CG_MAX_FLOOR_LIST
	 * floor budgets (for messages and health()).
	 */
	bool		has_floors;		/* any enforce budget with a floor */
	int64		floors_sum;		/* sum of the enforce budgets' floors */
	int			nfloors;		/* enforce budgets with a floor */
	int			floor_list[CG_MAX_FLOOR_LIST];
	pg_atomic_uint32 floors_unused;
	pg_atomic_uint64 wait_ticket_next;	/* ticket dispenser of waiters */
	pg_atomic_uint32 nwaiting;	/* sessions holding a wait ticket */
	pg_atomic_uint32 lower_pending;	/* 1.2: some slot's lower_pending is set */

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
	int32		min_connections;
	uint32		waiting;
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

/*---- the login path's figures (auth.c, floors.c, waitq.c, naming.c) ----*/

/* Budgets named in a floor refusal's DETAIL. */
#define CG_FLOOR_NAMES	5

/* The floor budgets a refusal names, copied out under the lock. */
typedef struct CgFloorRefusal
{
	int			nfree;			/* normal slots free when refused */
	uint32		unused;			/* the unused floors that refused it */
	int			n;				/* budgets with unused floors */
	struct
	{
		char		name[NAMEDATALEN];
		uint32		unused;
		int32		min_connections;
	}			b[CG_FLOOR_NAMES];
} CgFloorRefusal;

/* What the login path decided. */
typedef enum CgVerdict
{
	CG_ADMITTED,
	CG_REFUSED,					/* over the budget (after waiting, if it did) */
	CG_QUEUE_FULL,				/* over the budget, max_waiting already wait */
	CG_REFUSED_FLOORS,			/* the free slots are others' floors */
	CG_NO_ROOM,					/* over the budget, and waiting would take
								 * reserved room */
	CG_WAIT,					/* queued: cg_wait_for_place() decides */
	CG_REFUSED_RATE,			/* 1.2: over the budget's login_rate */
	CG_PACE						/* 1.2: its token is reserved: wait for it
								 * (cg_pace) */
} CgVerdict;

/* One login's figures, kept for the messages after the lock is gone. */
typedef struct CgLogin
{
	int			budget;			/* index or CG_UNBUDGETED */
	bool		exempt;
	uint32		in_use;
	uint32		waiting;		/* CG_QUEUE_FULL: logins waiting */
	bool		would_refuse;	/* admitted over the budget, recorded */
	bool		would_refuse_floors;
	bool		waited;
	double		waited_s;
	bool		late;			/* late naming, not a login */
	bool		unnamed;		/* charged by the empty name */
	int			room_free;		/* CG_NO_ROOM: free process slots */
	int			room_needed;	/* ... and how many had to stay free */
	char		budget_name[NAMEDATALEN];
	CgBudget	hit;			/* the budget's policy part */
	CgFloorRefusal fr;
	/* 1.2: login_rate (ratelimit.c) */
	bool		would_refuse_rate;	/* admitted over the rate, recorded */
	bool		paced;			/* waited for its token */
	bool		has_token;		/* a token is reserved for it: token_tat */
	int			token_slot;		/* ... in this counter slot */
	uint64		token_tat;		/* the slot's rate_tat its reservation set */
	int64		pace_ns;		/* CG_PACE: how long until its token */
	int64		retry_ns;		/* CG_REFUSED_RATE: the next token in */
	TimestampTz wait_start;		/* when it began to wait, 0 = not yet */
} CgLogin;

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
extern int	cg_commit_wait_timeout;
extern const char *cg_exempt_list;
extern int	cg_history_size;

/*---- shmem.c ----*/
extern CgSharedState *cg_shared;
extern CgBudget *cg_budget_sets[2];
extern CgIndex cg_indexes[2];
extern CgSlot *cg_slots;
extern int	cg_nslots;
extern CgSession *cg_sessions;
extern CgEvent *cg_events;
extern int	cg_nsessions;
extern void cg_shmem_init_hooks(void);
extern void cg_require_shared_state(void);
extern void cg_init_counters(CgCounters *c);
extern void cg_reset_counters(CgCounters *c);
extern void cg_zero_stats(CgCounters *c);
extern CgCounters *cg_counters(int budget);
extern CgCounters *cg_slot_counters(int slot);
extern int	cg_session_charge(const CgSession *s);
extern void cg_session_set_name(CgSession *s, const char *name);
extern void cg_session_name(const CgSession *s, char *buf);
extern bool cg_session_move(CgSession *s, int from, int to);
extern bool cg_charge(CgCounters *c, int64 limit, uint32 *in_use);
extern void cg_note_peak(CgCounters *c, uint32 total);
extern int	cg_budget_slot(int budget);
extern bool cg_slot_within_floor(int slot);
extern bool cg_charge_slot(int slot, int64 limit, uint32 *in_use);
extern bool cg_release_slot(int slot);
extern bool cg_charge_budget(int budget, int64 limit, uint32 *in_use);
extern bool cg_release_budget(int budget);
extern uint32 cg_unused_floor(int budget);
extern void cg_publish_aggregates(void);
extern int	cg_publish_waiters(int *woken);
extern void cg_wake_waiters(void);
extern int	cg_copy_usage(CgUsageRow **rows, CgLoadState *state);
extern void cg_add_event(CgEventKind kind, const char *budget, int pid,
						 const char *role_name, const char *database_name,
						 const char *application_name, const char *client_addr,
						 const char *detail);
extern void cg_wake_worker(void);
extern void cg_note_refused(CgCounters *c);

/*---- history.c ----*/
extern Size cg_history_shmem_size(void);
extern void cg_history_shmem_init(LWLock *lock);
extern void cg_history_note(CgCounters *c, uint32 total);
extern void cg_history_sessions(int delta, bool waiting);
extern TimestampTz cg_history_close(TimestampTz now);
extern void cg_history_figures(uint64 *held, TimestampTz *oldest,
							   uint64 *early, uint64 *skipped);

/*---- match.c ----*/
extern bool cg_like_match(const char *text, const char *pattern);
extern int	cg_pattern_prefix(const char *pattern, char *prefix);
extern void cg_index_build(CgIndex *ix, int nbudgets, uint64 *prefix_lengths);
extern int	cg_match_indexed(const CgIndex *ix, uint64 prefix_lengths,
							 const char *application_name,
							 const char *role_name, const char *database_name);
extern int	cg_match_linear(const CgBudget *budgets, int nbudgets,
							const char *application_name,
							const char *role_name, const char *database_name);
extern int	cg_match_budget(const char *application_name, const char *role_name,
							const char *database_name);

/*---- budgets.c ----*/
extern CgLoadResult cg_load_budgets(char *reason, bool standby);
extern Oid	cg_budgets_relid(void);
extern bool cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
							   bool standby, int nother,
							   CgLoadState state, const char *reason);
extern int64 cg_interval_to_ms(const Interval *iv);
extern const char *cg_status(uint32 total, int32 max_connections);
extern const char *cg_budget_status(uint32 total, int32 max_connections,
									TimestampTz last_refused_at);

/*---- loader.c ----*/
extern void cg_register_loader(void);
extern PGDLLEXPORT void cg_loader_main(Datum main_arg);
extern uint32 cg_request_load(bool rows);
extern bool cg_loader_can_load(void);
extern void cg_loader_leave(void);
extern void cg_loader_back(void);
extern void cg_loader_health(StringInfo buf, bool *ok);

/*---- guard.c ----*/
extern void cg_guard_init(void);

/*---- monitor.c ----*/
extern int	cg_normal_slots(void);
extern int	cg_errdetail_slots(void);
extern void cg_check_natts(TupleDesc desc, int ncols, const char *function);

/*---- notify.c ----*/
extern bool cg_changes_pending(void);
extern void cg_notify_init(void);
extern bool cg_rel_has_column(Relation rel, const char *name);
extern void cg_budgets_here(Relation rel, StringInfo where, StringInfo limit);

/*---- auth.c ----*/
extern void cg_auth_init(void);
extern CgSession *cg_my_session(void);
extern void cg_recheck_exempt(void);
extern void cg_note_budget(CgLogin *l, int budget);
extern CgVerdict cg_charge_login_locked(CgSession *s, int slot, CgLogin *l);
extern CgVerdict cg_after_charge_locked(CgSession *s, int slot, CgLogin *l);
struct Port;
extern void cg_port_addr(struct Port *port, char *addr, size_t len);
extern void cg_login_event(const CgSession *s, const char *application_name,
						   const CgLogin *l, CgVerdict v);

/*---- floors.c ----*/
extern bool cg_floors_refuse(int budget, uint32 in_use, CgFloorRefusal *fr);
extern void cg_wait_transient(void);

/*---- waitq.c ----*/
extern bool cg_room_to_wait(int budget, CgLogin *l);
extern CgVerdict cg_charge_or_queue(CgSession *s, int slot, CgLogin *l,
									int64 limit, int32 max_waiting);
extern void cg_leave_queue(bool timed_out);
extern void cg_waitq_exit(void);
extern CgVerdict cg_wait_for_place(CgSession *s, int slot, CgLogin *l);
extern void cg_wake_queue(int slot);
extern void cg_wake_session(int slot);
extern void cg_queue_unlink(CgCounters *c, int slot);
extern void cg_queue_insert(CgCounters *c, int slot);
extern void cg_check_waits_fit(Relation rel);

/*---- ratelimit.c ----*/
extern void cg_rate_compile(CgBudget *b);
extern CgVerdict cg_rate_check_locked(CgLogin *l);
extern CgVerdict cg_pace(CgLogin *l);
extern void cg_rate_refund(CgLogin *l);
extern void cg_rate_exit(void);

/*---- lower.c ----*/
extern void cg_note_lowered(int slot);
extern void cg_end_lowered(void);

/*---- naming.c ----*/
extern char *cg_login_name(struct Port *port);
extern void cg_recharge_if_renamed(void);

/*---- refusal.c ----*/
extern void cg_refusal_init(void);
extern void cg_refuse(const CgBudget *b, uint32 in_use, const char *extra);
extern void cg_refuse_login(const CgLogin *l, CgVerdict v);
extern void cg_refuse_for_floors(const char *budget_name,
								 const CgFloorRefusal *fr);
extern void cg_refuse_rate(const CgLogin *l, const char *extra);

/*---- statements.c ----*/
extern bool cg_naming_open;
extern bool cg_naming_first;
extern void cg_statements_init(void);

/*---- worker.c ----*/
extern void cg_register_worker(void);
extern PGDLLEXPORT void cg_worker_main(Datum main_arg);
extern void cg_recover_from_error(MemoryContext loop_ctx, int *pause_ms);
extern bool cg_loop_begin(MemoryContext loop_ctx);

/*---- idle.c ----*/
extern TimestampTz cg_sweep(bool dry_run, Oid as_role,
							CgSweepResult **results, int *nresults);

#endif							/* CONNGOV_H */
