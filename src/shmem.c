/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		conngov's shared state: its size, creation, counters and events.
 *
 * One segment holds, in order: CgSharedState, conngov.max_budgets budgets,
 * one CgSession per backend (indexed by PGPROC number) and the events ring
 * of conngov.event_capacity entries.  The lock rules are in conngov.h.
 *
 * 1.1 adds, without changing that layout: per-budget wait counters and a
 * condition variable in CgCounters (initialised once here, never at a
 * publish, since waiting logins may sleep on it), a ticket and a budget
 * per session slot for logins waiting for a place, and the floors'
 * aggregates in CgSharedState.  cg_charge_budget() and cg_release_budget()
 * keep floors_unused exact; cg_publish_aggregates(), cg_publish_waiters()
 * and cg_wake_waiters() are what a publish must call.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

CgSharedState *cg_shared = NULL;
CgBudget   *cg_budgets = NULL;
CgSession  *cg_sessions = NULL;
CgEvent    *cg_events = NULL;
int			cg_nsessions = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * cg_shmem_size: bytes needed for the whole state.  MaxBackends is known
 * by the time shmem_request_hook runs; client backends' PGPROC numbers are
 * all below it.
 */
static Size
cg_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(CgSharedState));
	size = add_size(size, MAXALIGN(mul_size(cg_max_budgets, sizeof(CgBudget))));
	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(CgSession))));
	size = add_size(size, mul_size(cg_event_capacity, sizeof(CgEvent)));
	return size;
}

static void
cg_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(cg_shmem_size());
	RequestNamedLWLockTranche(CG_TRANCHE_NAME, 2);
}

static void
cg_init_counters(CgCounters *c)
{
	pg_atomic_init_u32(&c->total, 0);
	pg_atomic_init_u32(&c->peak, 0);
	pg_atomic_init_u64(&c->admitted, 0);
	pg_atomic_init_u64(&c->refused, 0);
	pg_atomic_init_u64(&c->would_refuse, 0);
	pg_atomic_init_u64(&c->ended_idle, 0);
	pg_atomic_init_u64(&c->would_end_idle, 0);
	pg_atomic_init_u64(&c->last_refused_at, 0);
	pg_atomic_init_u64(&c->refused_for_floors, 0);
	pg_atomic_init_u64(&c->waited, 0);
	pg_atomic_init_u64(&c->wait_us_total, 0);
	pg_atomic_init_u64(&c->wait_timeouts, 0);
	pg_atomic_init_u32(&c->waiting, 0);
	ConditionVariableInit(&c->wait_cv);
}

/*
 * cg_shmem_startup: create or attach the state.  Runs in the postmaster (and
 * again after a crash restart, when shared memory is new), under
 * AddinShmemInitLock.  A new state has no budgets loaded: logins are
 * admitted until the worker reads the table.
 */
static void
cg_shmem_startup(void)
{
	bool		found;
	char	   *base;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	base = ShmemInitStruct("conngov", cg_shmem_size(), &found);
	cg_shared = (CgSharedState *) base;
	base += MAXALIGN(sizeof(CgSharedState));
	cg_budgets = (CgBudget *) base;
	base += MAXALIGN(mul_size(cg_max_budgets, sizeof(CgBudget)));
	cg_sessions = (CgSession *) base;
	base += MAXALIGN(mul_size(MaxBackends, sizeof(CgSession)));
	cg_events = (CgEvent *) base;
	cg_nsessions = MaxBackends;

	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(CG_TRANCHE_NAME);
		int			i;

		memset(cg_shared, 0, cg_shmem_size());
		cg_shared->lock = &locks[0].lock;
		cg_shared->events_lock = &locks[1].lock;
		SpinLockInit(&cg_shared->mutex);
		cg_shared->state = CG_STATE_UNLOADED;
		cg_shared->stats_reset = GetCurrentTimestamp();
		pg_atomic_init_u32(&cg_shared->reload_requested, 0);
		pg_atomic_init_u32(&cg_shared->reload_done, 0);
		ConditionVariableInit(&cg_shared->reload_cv);
		cg_init_counters(&cg_shared->unbudgeted);
		for (i = 0; i < cg_max_budgets; i++)
			cg_init_counters(&cg_budgets[i].c);
		pg_atomic_init_u32(&cg_shared->floors_unused, 0);
		pg_atomic_init_u64(&cg_shared->wait_ticket_next, 1);
		for (i = 0; i < cg_nsessions; i++)
		{
			cg_sessions[i].budget = CG_NOT_CHARGED;
			pg_atomic_init_u64(&cg_sessions[i].wait_ticket, 0);
			cg_sessions[i].wait_budget = CG_NOT_CHARGED;
		}
	}

	LWLockRelease(AddinShmemInitLock);
}

void
cg_shmem_init_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cg_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cg_shmem_startup;
}

/*
 * cg_require_shared_state: the check every SQL-callable function makes
 * first.
 */
void
cg_require_shared_state(void)
{
	if (cg_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("conngov must be loaded via \"shared_preload_libraries\""),
				 errhint("Add conngov to \"shared_preload_libraries\" and restart the server.")));
}

/*
 * cg_counters: the counters a session charged to "budget" bumps.  Caller
 * holds the lock (shared is enough) so that the index means the published
 * budgets.
 */
CgCounters *
cg_counters(int budget)
{
	Assert(budget != CG_NOT_CHARGED);
	if (budget == CG_UNBUDGETED)
		return &cg_shared->unbudgeted;
	return &cg_budgets[budget].c;
}

/*
 * cg_charge: count one more session unless that would take the total past
 * "limit" (-1: no limit).  A compare-and-swap loop, so that concurrent
 * logins never overshoot and a failed attempt leaves the total untouched.
 * *in_use gets the total after the charge, or the total that refused it.
 * Caller holds cg_shared->lock, shared.
 */
bool
cg_charge(CgCounters *c, int64 limit, uint32 *in_use)
{
	uint32		cur = pg_atomic_read_u32(&c->total);
	uint32		peak;

	for (;;)
	{
		if (limit >= 0 && cur >= (uint64) limit)
		{
			*in_use = cur;
			return false;
		}
		if (pg_atomic_compare_exchange_u32(&c->total, &cur, cur + 1))
			break;
	}
	*in_use = ++cur;

	peak = pg_atomic_read_u32(&c->peak);
	while (cur > peak)
	{
		if (pg_atomic_compare_exchange_u32(&c->peak, &peak, cur))
			break;
	}
	return true;
}

/*---- 1.1: floors and waits ----*/

/* Whether a budget's charges move floors_unused: enforce, with a floor. */
static inline bool
cg_is_floor_budget(const CgBudget *b)
{
	return !b->monitor && b->min_connections > 0;
}

/*
 * cg_charge_budget: cg_charge() on a budget (or CG_UNBUDGETED), keeping
 * floors_unused exact: a charge that takes a floor budget's total up to
 * its floor or less uses one of its guaranteed slots.  The total goes up
 * first and floors_unused down second, so that in between the unused
 * floors read too high, never too low (auth.c explains why that is the
 * safe side).  Caller holds cg_shared->lock, shared.
 */
bool
cg_charge_budget(int budget, int64 limit, uint32 *in_use)
{
	if (!cg_charge(cg_counters(budget), limit, in_use))
		return false;
	if (budget >= 0 && cg_is_floor_budget(&cg_budgets[budget]) &&
		*in_use <= (uint32) cg_budgets[budget].min_connections)
		pg_atomic_fetch_sub_u32(&cg_shared->floors_unused, 1);
	return true;
}

/*
 * cg_release_budget: give one charge of budget (or CG_UNBUDGETED) back.
 * For a floor budget going below its floor, floors_unused goes up before
 * the total comes down (a compare-and-swap loop, undone when it loses a
 * race), so that the unused floors never read too low.  Returns whether
 * logins wait for a place in the budget (the caller broadcasts its
 * wait_cv once it has released the lock).  Caller holds cg_shared->lock,
 * shared.
 */
bool
cg_release_budget(int budget)
{
	CgCounters *c = cg_counters(budget);
	bool		floor = budget >= 0 && cg_is_floor_budget(&cg_budgets[budget]);
	uint32		cur = pg_atomic_read_u32(&c->total);

	for (;;)
	{
		bool		below = floor &&
			cur <= (uint32) cg_budgets[budget].min_connections;

		if (cur == 0)
			return false;		/* cannot happen: never below zero */
		if (below)
			pg_atomic_fetch_add_u32(&cg_shared->floors_unused, 1);
		if (pg_atomic_compare_exchange_u32(&c->total, &cur, cur - 1))
			break;
		if (below)
			pg_atomic_fetch_sub_u32(&cg_shared->floors_unused, 1);
	}
	return budget >= 0 && pg_atomic_read_u32(&c->waiting) > 0;
}

/*
 * cg_unused_floor: max(0, min_connections - total) of an enforce budget,
 * 0 for the others.  Caller holds the lock, shared.
 */
uint32
cg_unused_floor(int budget)
{
	const CgBudget *b;
	uint32		total;

	if (budget < 0)
		return 0;
	b = &cg_budgets[budget];
	if (!cg_is_floor_budget(b))
		return 0;
	total = pg_atomic_read_u32(&cg_counters(budget)->total);
	return total >= (uint32) b->min_connections ? 0 :
		(uint32) b->min_connections - total;
}

/*
 * cg_publish_aggregates: what the login path needs precomputed about the
 * floors of the budgets just published: whether any enforce budget has
 * one (the login path skips the floor check otherwise, O(1)), their sum
 * (health(), the load WARNING), the first CG_MAX_FLOOR_LIST of them (the
 * refusal's DETAIL) and floors_unused from the recomputed totals.  Called
 * at the end of a publish, after totals are recounted, with the lock held
 * exclusively (no charge runs meanwhile).
 */
void
cg_publish_aggregates(void)
{
	uint32		unused = 0;
	int			i;

	cg_shared->has_floors = false;
	cg_shared->floors_sum = 0;
	cg_shared->nfloors = 0;
	for (i = 0; i < cg_shared->nbudgets; i++)
	{
		if (!cg_is_floor_budget(&cg_budgets[i]))
			continue;
		cg_shared->has_floors = true;
		cg_shared->floors_sum += cg_budgets[i].min_connections;
		if (cg_shared->nfloors < CG_MAX_FLOOR_LIST)
			cg_shared->floor_list[cg_shared->nfloors] = i;
		cg_shared->nfloors++;
		unused += cg_unused_floor(i);
	}
	pg_atomic_write_u32(&cg_shared->floors_unused, unused);
}

/*
 * cg_publish_waiters: re-match the logins waiting for a place to the
 * budgets just published and recount each budget's "waiting" (the
 * counters started again at 0).  A waiter whose login now matches no
 * budget is admitted unbudgeted when it next wakes.  Lock held
 * exclusively (waiters change their slots under the shared lock).
 */
void
cg_publish_waiters(void)
{
	int			i;

	for (i = 0; i < cg_nsessions; i++)
	{
		CgSession  *s = &cg_sessions[i];

		if (pg_atomic_read_u64(&s->wait_ticket) == 0)
			continue;
		s->wait_budget = cg_match_budget(s->application_name, s->role_name,
										 s->database_name);
		if (s->wait_budget >= 0)
			pg_atomic_fetch_add_u32(&cg_counters(s->wait_budget)->waiting, 1);
	}
}

/*
 * cg_wake_waiters: after a publish, wake the logins waiting in any budget
 * so that they look at the new budgets now.  A waiter that slept on the
 * condition variable of a budget that moved is woken by its tick
 * (CG_WAIT_TICK_MS) instead.  Takes the lock, shared.
 */
void
cg_wake_waiters(void)
{
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_shared->nbudgets; i++)
		if (pg_atomic_read_u32(&cg_counters(i)->waiting) > 0)
			ConditionVariableBroadcast(&cg_counters(i)->wait_cv);
	LWLockRelease(cg_shared->lock);
}

/*
 * cg_copy_usage: the budgets' figures, then the unbudgeted row (with
 * max_connections -1), and the load state if asked.  Returns the number of
 * rows in *rows (palloc'd).  Holds the lock, shared, for the copy only.
 */
int
cg_copy_usage(CgUsageRow **rows, CgLoadState *state)
{
	CgUsageRow *r = palloc(sizeof(CgUsageRow) * (cg_max_budgets + 1));
	int			n;
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (state)
		*state = cg_shared->state;
	n = cg_shared->nbudgets;
	for (i = 0; i < n; i++)
	{
		CgBudget   *b = &cg_budgets[i];

		memcpy(r[i].name, b->name, NAMEDATALEN);
		r[i].monitor = b->monitor;
		r[i].max_connections = b->max_connections;
		r[i].total = pg_atomic_read_u32(&b->c.total);
		r[i].peak = pg_atomic_read_u32(&b->c.peak);
		r[i].min_connections = b->min_connections;
		r[i].waiting = pg_atomic_read_u32(&cg_counters(i)->waiting);
	}
	LWLockRelease(cg_shared->lock);

	strlcpy(r[n].name, CG_UNBUDGETED_NAME, NAMEDATALEN);
	r[n].monitor = false;
	r[n].max_connections = -1;
	r[n].total = pg_atomic_read_u32(&cg_shared->unbudgeted.total);
	r[n].peak = pg_atomic_read_u32(&cg_shared->unbudgeted.peak);
	r[n].min_connections = 0;
	r[n].waiting = 0;

	*rows = r;
	return n + 1;
}

/*
 * cg_add_event: append one event to the ring, overwriting the oldest when
 * full.  Holds events_lock only for the time stamp and the copy.
 */
void
cg_add_event(CgEventKind kind, const char *budget, int pid,
			 const char *role_name, const char *database_name,
			 const char *application_name, const char *client_addr,
			 const char *detail)
{
	CgEvent		ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.pid = pid;
	strlcpy(ev.budget, budget ? budget : "", NAMEDATALEN);
	strlcpy(ev.role_name, role_name ? role_name : "", NAMEDATALEN);
	strlcpy(ev.database_name, database_name ? database_name : "", NAMEDATALEN);
	strlcpy(ev.application_name, application_name ? application_name : "",
			NAMEDATALEN);
	strlcpy(ev.client_addr, client_addr ? client_addr : "",
			sizeof(ev.client_addr));
	strlcpy(ev.detail, detail ? detail : "", sizeof(ev.detail));

	LWLockAcquire(cg_shared->events_lock, LW_EXCLUSIVE);
	/* stamped under the lock: ring order is time order (events(since)) */
	ev.at = GetCurrentTimestamp();
	cg_events[cg_shared->event_next % cg_event_capacity] = ev;
	cg_shared->event_next++;
	LWLockRelease(cg_shared->events_lock);
}

/*
 * cg_wake_worker: set the worker's latch, if it runs.  Safe in a commit
 * callback: takes a spinlock and cannot fail.
 */
void
cg_wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&cg_shared->mutex);
	latch = cg_shared->worker_latch;
	SpinLockRelease(&cg_shared->mutex);
	if (latch)
		SetLatch(latch);
}
