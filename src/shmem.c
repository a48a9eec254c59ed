/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		conngov's shared state: its size, creation, counters and events.
 *
 * One segment holds, in order: CgSharedState; two budget sets of
 * conngov.max_budgets budgets each, with their hash tables and lists of
 * floor budgets; the counter slots (twice max_budgets: the budgets of the
 * active set, and those a publish retires while it builds the other set);
 * one CgSession per backend (indexed by PGPROC number); and the events
 * ring of conngov.event_capacity entries.  The lock rules are in conngov.h.
 *
 * Floors and waits: a slot's counters hold its waiting logins' count and
 * queue (oldest first, waitq.c; its spinlock initialised once here); a
 * session slot holds the ticket, counter slot and queue links of a login
 * waiting for a place; CgSharedState holds the floors' aggregates.  cg_charge_slot() and cg_release_slot() keep floors_unused
 * exact; cg_publish_aggregates(), cg_publish_waiters() (at the flip) and
 * cg_wake_waiters() (after it) are what a publish must call.
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
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

CgSharedState *cg_shared = NULL;
CgBudget   *cg_budget_sets[2] = {NULL, NULL};
CgIndex		cg_indexes[2];
CgSlot	   *cg_slots = NULL;
int			cg_nslots = 0;
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
static bool cg_charge_slot_ext(int slot, int64 limit, uint32 *in_use,
							   bool session);
static bool cg_release_slot_ext(int slot, bool session);

/* Entries of each budget set's hash table: a power of 2, >= 2 x budgets. */
static uint32
cg_hash_size(void)
{
	return pg_nextpower2_32(Max(2 * cg_max_budgets, 16));
}

static Size
cg_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(CgSharedState));
	size = add_size(size, mul_size(2, MAXALIGN(mul_size(cg_max_budgets,
														 sizeof(CgBudget)))));
	size = add_size(size, mul_size(2, MAXALIGN(mul_size(cg_hash_size(),
														 sizeof(int32)))));
	size = add_size(size, mul_size(2, MAXALIGN(mul_size(cg_max_budgets,
														 sizeof(int32)))));
	size = add_size(size, MAXALIGN(mul_size(2 * cg_max_budgets, sizeof(CgSlot))));
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
	RequestAddinShmemSpace(cg_history_shmem_size());
	RequestNamedLWLockTranche(CG_TRANCHE_NAME, 4);
}

/* Counters at 0 and an empty wait queue with its spinlock, in a new segment. */
void
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
	SpinLockInit(&c->wait_mutex);
	c->wait_head = c->wait_tail = -1;
	pg_atomic_init_u64(&c->rate_tat, 0);
	pg_atomic_init_u64(&c->refused_rate, 0);
	pg_atomic_init_u64(&c->paced, 0);
	pg_atomic_init_u64(&c->ended_lowered, 0);
	pg_atomic_init_u32(&c->lower_pending, 0);
	pg_atomic_init_u64(&c->minute[0], 0);
	pg_atomic_init_u64(&c->minute[1], 0);
}

/*
 * cg_reset_counters: a counter slot given to a new budget starts at 0.
 * Nobody is charged to it or waits in its queue (a publish moved them off
 * before it was retired); its spinlock is left alone all the same.
 */
void
cg_reset_counters(CgCounters *c)
{
	pg_atomic_write_u32(&c->total, 0);
	pg_atomic_write_u32(&c->peak, 0);
	pg_atomic_write_u32(&c->waiting, 0);
	c->wait_head = c->wait_tail = -1;
	/* a new budget starts with a full bucket and nothing to end */
	pg_atomic_write_u64(&c->rate_tat, 0);
	pg_atomic_write_u32(&c->lower_pending, 0);
	cg_zero_stats(c);
}

/*
 * cg_zero_stats: the counters stats() shows and reset_stats() zeroes (not
 * total, peak or waiting, which describe now).
 */
void
cg_zero_stats(CgCounters *c)
{
	pg_atomic_write_u64(&c->admitted, 0);
	pg_atomic_write_u64(&c->refused, 0);
	pg_atomic_write_u64(&c->would_refuse, 0);
	pg_atomic_write_u64(&c->ended_idle, 0);
	pg_atomic_write_u64(&c->would_end_idle, 0);
	pg_atomic_write_u64(&c->last_refused_at, 0);
	pg_atomic_write_u64(&c->refused_for_floors, 0);
	pg_atomic_write_u64(&c->waited, 0);
	pg_atomic_write_u64(&c->wait_us_total, 0);
	pg_atomic_write_u64(&c->wait_timeouts, 0);
	pg_atomic_write_u64(&c->refused_rate, 0);
	pg_atomic_write_u64(&c->paced, 0);
	pg_atomic_write_u64(&c->ended_lowered, 0);
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
	int			k;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	base = ShmemInitStruct("conngov", cg_shmem_size(), &found);
	cg_shared = (CgSharedState *) base;
	base += MAXALIGN(sizeof(CgSharedState));
	for (k = 0; k < 2; k++)
	{
		cg_budget_sets[k] = (CgBudget *) base;
		base += MAXALIGN(mul_size(cg_max_budgets, sizeof(CgBudget)));
	}
	for (k = 0; k < 2; k++)
	{
		cg_indexes[k].budgets = cg_budget_sets[k];
		cg_indexes[k].hash = (int32 *) base;
		cg_indexes[k].hash_mask = cg_hash_size() - 1;
		base += MAXALIGN(mul_size(cg_hash_size(), sizeof(int32)));
		cg_indexes[k].floors = (int32 *) base;
		base += MAXALIGN(mul_size(cg_max_budgets, sizeof(int32)));
	}
	cg_slots = (CgSlot *) base;
	cg_nslots = 2 * cg_max_budgets;
	base += MAXALIGN(mul_size(cg_nslots, sizeof(CgSlot)));
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
		cg_shared->publish_lock = &locks[2].lock;
		SpinLockInit(&cg_shared->mutex);
		cg_shared->state = CG_STATE_UNLOADED;
		cg_shared->stats_reset = GetCurrentTimestamp();
		pg_atomic_init_u32(&cg_shared->reload_requested, 0);
		pg_atomic_init_u32(&cg_shared->ryw_requested, 0);
		pg_atomic_init_u32(&cg_shared->reload_done, 0);
		pg_atomic_init_u64(&cg_shared->pending_since, 0);
		ConditionVariableInit(&cg_shared->reload_cv);
		cg_init_counters(&cg_shared->unbudgeted);
		for (k = 0; k < 2; k++)
		{
			for (i = 0; i <= (int) cg_indexes[k].hash_mask; i++)
				cg_indexes[k].hash[i] = -1;
		}
		for (i = 0; i < cg_nslots; i++)
		{
			cg_slots[i].index[0] = cg_slots[i].index[1] = -1;
			cg_init_counters(&cg_slots[i].c);
		}
		pg_atomic_init_u32(&cg_shared->floors_unused, 0);
		pg_atomic_init_u64(&cg_shared->wait_ticket_next, 1);
		pg_atomic_init_u32(&cg_shared->nwaiting, 0);
		pg_atomic_init_u32(&cg_shared->lower_pending, 0);
		for (i = 0; i < cg_nsessions; i++)
		{
			pg_atomic_init_u32(&cg_sessions[i].charge, (uint32) CG_NOT_CHARGED);
			pg_atomic_init_u32(&cg_sessions[i].name_seq, 0);
			pg_atomic_init_u64(&cg_sessions[i].wait_ticket, 0);
			cg_sessions[i].wait_slot = CG_NOT_CHARGED;
			cg_sessions[i].wait_prev = cg_sessions[i].wait_next = -1;
		}
	}
	/* history_lock is the fourth of the tranche */
	cg_history_shmem_init(&GetNamedLWLockTranche(CG_TRANCHE_NAME)[3].lock);

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
 * cg_counters: the counters a session charged to "budget" (an index in the
 * active set, or CG_UNBUDGETED) bumps.  Caller holds the lock (shared is
 * enough) so that the index means the published budgets.
 */
CgCounters *
cg_counters(int budget)
{
	Assert(budget != CG_NOT_CHARGED);
	if (budget == CG_UNBUDGETED)
		return &cg_shared->unbudgeted;
	return &cg_slots[cg_budgets[budget].slot].c;
}

/* The counters of a counter slot, or the unbudgeted ones. */
CgCounters *
cg_slot_counters(int slot)
{
	Assert(slot != CG_NOT_CHARGED);
	if (slot == CG_UNBUDGETED)
		return &cg_shared->unbudgeted;
	return &cg_slots[slot].c;
}

/*
 * cg_session_set_name: the owner changes the name its session is charged
 * by (late naming) while publishers may read it: name_seq is odd while
 * the name is being written, as in a seqlock.
 */
void
cg_session_set_name(CgSession *s, const char *name)
{
	pg_atomic_fetch_add_u32(&s->name_seq, 1);
	pg_write_barrier();
	strlcpy(s->application_name, name, NAMEDATALEN);
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&s->name_seq, 1);
}

/*
 * cg_session_name: a consistent copy of the name a session is charged by
 * (NAMEDATALEN bytes), for a publisher re-matching it.  Retries while the
 * owner is renaming it, a few instructions' wait.
 */
void
cg_session_name(const CgSession *s, char *buf)
{
	pg_atomic_uint32 *seq = unconstify(pg_atomic_uint32 *, &s->name_seq);

	for (;;)
	{
		uint32		before = pg_atomic_read_u32(seq);

		pg_read_barrier();
		memcpy(buf, s->application_name, NAMEDATALEN);
		buf[NAMEDATALEN - 1] = '\0';
		pg_read_barrier();
		if ((before & 1) == 0 && pg_atomic_read_u32(seq) == before)
			return;
		pg_spin_delay();
	}
}

/* What a session is charged to: a slot, CG_UNBUDGETED or CG_NOT_CHARGED. */
int
cg_session_charge(const CgSession *s)
{
	return (int32) pg_atomic_read_u32(unconstify(pg_atomic_uint32 *, &s->charge));
}

/*
 * cg_session_move: charge session s to slot "to" instead of "from", unless
 * it changed meanwhile (its owner released it at exit).  The new charge is
 * counted before the old one is given back, so a total is never short,
 * only briefly one too high.  Returns whether it moved.  Caller holds the
 * lock, shared, so that an exiting owner's release is not half done.
 */
bool
cg_session_move(CgSession *s, int from, int to)
{
	uint32		expected = (uint32) from;
	uint32		in_use;

	/* the same session: the server's count of sessions does not move */
	(void) cg_charge_slot_ext(to, -1, &in_use, false);
	if (!pg_atomic_compare_exchange_u32(&s->charge, &expected, (uint32) to))
	{
		(void) cg_release_slot_ext(to, false);
		return false;
	}
	(void) cg_release_slot_ext(from, false);
	return true;
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
	cg_note_peak(c, cur);
	cg_history_note(c, cur);
	return true;
}

/* Raise the peak to total if it is higher. */
void
cg_note_peak(CgCounters *c, uint32 total)
{
	uint32		peak = pg_atomic_read_u32(&c->peak);

	while (total > peak &&
		   !pg_atomic_compare_exchange_u32(&c->peak, &peak, total))
		;
}

/*---- 1.1: floors and waits ----*/

/* Whether a budget's charges move floors_unused: enforce, with a floor. */
static inline bool
cg_is_floor_budget(const CgBudget *b)
{
	return !b->monitor && b->min_connections > 0;
}

/*
 * cg_slot_floor: the floor that charges of a counter slot count against:
 * the min_connections of its budget in the active set when that is an
 * enforce budget with a floor, else 0.  Caller holds the lock, shared.
 */
static inline uint32
cg_slot_floor(int slot)
{
	int			budget;

	if (slot < 0)
		return 0;
	budget = cg_slots[slot].index[cg_shared->active];
	if (budget < 0 || !cg_is_floor_budget(&cg_budgets[budget]))
		return 0;
	return (uint32) cg_budgets[budget].min_connections;
}

/*
 * cg_slot_within_floor: whether a session charged to a counter slot holds
 * one of its budget's guaranteed slots (the total is at most the floor).
 * Caller holds the lock, shared.
 */
bool
cg_slot_within_floor(int slot)
{
	uint32		floor = cg_slot_floor(slot);

	return floor > 0 &&
		pg_atomic_read_u32(&cg_slots[slot].c.total) <= floor;
}

/* The counter slot of a budget of the active set, or CG_UNBUDGETED. */
int
cg_budget_slot(int budget)
{
	return budget == CG_UNBUDGETED ? CG_UNBUDGETED : cg_budgets[budget].slot;
}

/*
 * cg_charge_slot: cg_charge() on a counter slot (or CG_UNBUDGETED),
 * keeping floors_unused exact: a charge that takes a floor budget's total
 * up to its floor or less uses one of its guaranteed slots.  The total
 * goes up first and floors_unused down second, so that in between the
 * unused floors read too high, never too low (floors.c explains why that is
 * the safe side).  Every change of a total outside a publish's flip goes
 * through this and cg_release_slot, so floors_unused is the sum of the
 * unused floors of the active set at all times.  Caller holds
 * cg_shared->lock, shared.
 */
static bool
cg_charge_slot_ext(int slot, int64 limit, uint32 *in_use, bool session)
{
	uint32		floor = cg_slot_floor(slot);

	if (!cg_charge(cg_slot_counters(slot), limit, in_use))
		return false;
	if (floor > 0 && *in_use <= floor)
		pg_atomic_fetch_sub_u32(&cg_shared->floors_unused, 1);
	if (session)
		cg_history_sessions(1, false);
	return true;
}

bool
cg_charge_slot(int slot, int64 limit, uint32 *in_use)
{
	return cg_charge_slot_ext(slot, limit, in_use, true);
}

/*
 * cg_release_slot: give one charge of a counter slot (or CG_UNBUDGETED)
 * back.  For a floor budget going below its floor, floors_unused goes up
 * before the total comes down (a compare-and-swap loop, undone when it
 * loses a race), so that the unused floors never read too low.  Returns
 * whether logins wait for a place in the budget (the caller wakes the
 * oldest, cg_wake_queue).  Caller holds cg_shared->lock, shared.
 */
static bool
cg_release_slot_ext(int slot, bool session)
{
	CgCounters *c = cg_slot_counters(slot);
	uint32		floor = cg_slot_floor(slot);
	uint32		cur = pg_atomic_read_u32(&c->total);

	for (;;)
	{
		bool		below = floor > 0 && cur <= floor;

		if (cur == 0)
			return false;		/* cannot happen: never below zero */
		if (below)
			pg_atomic_fetch_add_u32(&cg_shared->floors_unused, 1);
		if (pg_atomic_compare_exchange_u32(&c->total, &cur, cur - 1))
			break;
		if (below)
			pg_atomic_fetch_sub_u32(&cg_shared->floors_unused, 1);
	}
	/* the minute's peak knows the total before the release */
	cg_history_note(c, cur);
	if (session)
		cg_history_sessions(-1, false);
	return slot >= 0 && pg_atomic_read_u32(&c->waiting) > 0;
}

bool
cg_release_slot(int slot)
{
	return cg_release_slot_ext(slot, true);
}

/*
 * cg_note_refused: a login of counters c was refused now: its last
 * refusal time, and its minute in the usage history (a refused login
 * changes no total, but the minute has activity).  Caller holds the
 * lock, shared.
 */
void
cg_note_refused(CgCounters *c)
{
	pg_atomic_write_u64(&c->last_refused_at, (uint64) GetCurrentTimestamp());
	cg_history_note(c, pg_atomic_read_u32(&c->total));
}

/* cg_charge_slot and cg_release_slot for a budget of the active set. */
bool
cg_charge_budget(int budget, int64 limit, uint32 *in_use)
{
	return cg_charge_slot(cg_budget_slot(budget), limit, in_use);
}

bool
cg_release_budget(int budget)
{
	return cg_release_slot(cg_budget_slot(budget));
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
 * cg_publish_aggregates: what the login path needs about the floors of the
 * set just made active: whether any enforce budget has one (the login
 * path skips the floor check otherwise, O(1)), their sum (health(), the
 * load WARNING), the first CG_MAX_FLOOR_LIST of them (the refusal's
 * DETAIL) and floors_unused from the totals now.  Called by a publish at
 * the flip, with the lock held exclusively (no charge runs meanwhile):
 * work in the number of floor budgets only, listed when the set was built.
 */
void
cg_publish_aggregates(void)
{
	int			k = cg_shared->active;
	const CgBudgetSet *set = &cg_shared->set[k];
	uint32		unused = 0;
	int			i;

	cg_shared->has_floors = set->nfloors > 0;
	cg_shared->floors_sum = set->floors_sum;
	cg_shared->nfloors = set->nfloors;
	for (i = 0; i < set->nfloors; i++)
	{
		int			f = cg_indexes[k].floors[i];

		if (i < CG_MAX_FLOOR_LIST)
			cg_shared->floor_list[i] = f;
		unused += cg_unused_floor(f);
	}
	pg_atomic_write_u32(&cg_shared->floors_unused, unused);
}

/*
 * cg_publish_waiters: re-match the logins waiting for a place to the set
 * just made active (by the name each waits under), moving each one whose
 * budget is now another to that budget's queue, in ticket order (or out
 * of any queue: admitted unbudgeted when it next looks).  Lock held
 * exclusively: no queue changes meanwhile, so no spinlock is needed.  A
 * pass over the session slots, matching only the waiting ones; a moved
 * waiter goes in from the tail of its new queue, past the newer waiters
 * only.  Fills woken[] (room for one per session) with the session slots
 * of the moved waiters, for the caller to wake (cg_wake_session) once the
 * lock is released; returns their number.  With no login waiting (the
 * usual case) it costs one read: tickets are given and taken back under
 * the lock, shared, so none changes while it is held exclusively.
 */
int
cg_publish_waiters(int *woken)
{
	int			nwoken = 0;
	int			i;

	if (pg_atomic_read_u32(&cg_shared->nwaiting) == 0)
		return 0;

	for (i = 0; i < cg_nsessions; i++)
	{
		CgSession  *s = &cg_sessions[i];
		int			budget;
		int			slot;

		if (pg_atomic_read_u64(&s->wait_ticket) == 0)
			continue;
		budget = cg_match_budget(s->wait_name, s->role_name,
								 s->database_name);
		slot = cg_budget_slot(budget);
		if (slot == s->wait_slot)
			continue;
		if (s->wait_slot >= 0)
			cg_queue_unlink(&cg_slots[s->wait_slot].c, i);
		if (slot >= 0)
			cg_queue_insert(&cg_slots[slot].c, i);
		s->wait_slot = slot;
		woken[nwoken++] = i;
	}
	return nwoken;
}

/*
 * cg_wake_waiters: after a publish, wake the oldest waiter of each budget
 * so that it looks at the new budgets now (a raised limit); it wakes the
 * next one when a place is left.  Reads each queue's head under its
 * spinlock, with the lock held shared.
 */
void
cg_wake_waiters(void)
{
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nslots; i++)
		if (pg_atomic_read_u32(&cg_slots[i].c.waiting) > 0)
			cg_wake_queue(i);
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

		CgCounters *c = &cg_slots[b->slot].c;

		memcpy(r[i].name, b->name, NAMEDATALEN);
		r[i].monitor = b->monitor;
		r[i].max_connections = b->max_connections;
		r[i].total = pg_atomic_read_u32(&c->total);
		r[i].peak = pg_atomic_read_u32(&c->peak);
		r[i].min_connections = b->min_connections;
		r[i].waiting = pg_atomic_read_u32(&c->waiting);
		r[i].last_refused_at = (TimestampTz)
			pg_atomic_read_u64(&cg_counters(i)->last_refused_at);
	}
	LWLockRelease(cg_shared->lock);

	strlcpy(r[n].name, CG_UNBUDGETED_NAME, NAMEDATALEN);
	r[n].monitor = false;
	r[n].max_connections = -1;
	r[n].total = pg_atomic_read_u32(&cg_shared->unbudgeted.total);
	r[n].peak = pg_atomic_read_u32(&cg_shared->unbudgeted.peak);
	r[n].min_connections = 0;
	r[n].waiting = 0;
	r[n].last_refused_at = 0;

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
