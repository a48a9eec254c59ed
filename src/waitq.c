/*-------------------------------------------------------------------------
 *
 * waitq.c
 *		Waiting for a place (login_wait, max_waiting): each budget's queue
 *		of logins over it, oldest first.
 *
 * A login over a budget with login_wait joins the tail of the budget's
 * queue (a doubly linked list of session slots in the budget's counter
 * slot, CgCounters.wait_head) and sleeps on its own latch, without any
 * lock.  Only the head of the queue may take a place: a release sets the
 * latch of the oldest waiter of its budget and of no other, so a release
 * costs O(1) whatever waits, and a waiter looks at its own queue entry
 * only.  The head that takes a place wakes the next one when a place is
 * still free (a raised limit).  A newcomer, or a session renamed late
 * (naming.c), finding the queue not empty queues behind it: the place
 * goes by arrival order.  Checking for an empty queue and charging, or
 * else joining it, is one step under the queue's spinlock, so no login
 * overtakes one that found the budget full before it.
 *
 * Waiting logins never take reserved room.  A waiting login holds its
 * server process slot, and this check runs before PostgreSQL's own
 * reserved-slot check, so a login may start, and go on, waiting only
 * while the free process slots still cover superuser_reserved_connections
 * + reserved_connections + the other budgets' unused floors
 * (cg_room_to_wait); otherwise it is refused at once, and a waiter finds
 * that out at each wake or tick.  The PGPROC of every login racing with
 * this one is already taken, so racing waiters err on the side of the
 * reserve: whatever waits, a DBA can connect and floors hold.
 *
 * The wait ends when the login gets a place, at login_wait (refused,
 * DETAIL with the time waited), before authentication_timeout would end
 * it, when there is no room to wait any more, or when the client goes
 * away (checked every CG_WAIT_TICK_MS).  The exit callback leaves the
 * queue on every path (cancel, terminate, FATAL, postmaster death), and a
 * head that leaves wakes the next one.  A latch cannot lose a wake-up: a
 * waiter looks at the queue after its latch was reset and before it
 * sleeps, and a SetLatch in between ends the sleep at once.  A latch set
 * by mistake (the PGPROC of a waiter that has just left, reused) costs
 * its new owner one spurious wake-up, which every latch user tolerates.
 *
 * Lock rules: joining, leaving, reading the head and charging run under
 * cg_shared->lock, shared, plus the queue's wait_mutex (spinlock) for the
 * list and the charge only: a few dozen instructions, no call that can
 * fail.  A publish re-matches waiters holding cg_shared->lock exclusively
 * (cg_publish_waiters in shmem.c) and moves them between queues with the
 * insert and unlink of this file, without the spinlock.  SetLatch is
 * called after the spinlock is released.  The sleep holds no lock.
 *
 * max_waiting NULL means cg_default_max_waiting() (conngov.h), and the
 * table refuses waits that, with the floors, do not fit the server's
 * normal slots (cg_check_waits_fit, called by notify.c's trigger).
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/waitq.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/spi.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/rel.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* This backend's slot while it waits for a place (login_wait), else -1. */
static int	cg_wait_slot = -1;
static TimestampTz cg_wait_start = 0;

/*---- the queue ----*/

/*
 * cg_queue_insert: put session slot "slot" (its wait_ticket set) in c's
 * queue by ticket order: at the tail, unless a publish moves in a waiter
 * older than some already there.  Caller holds c->wait_mutex, or
 * cg_shared->lock exclusively.
 */
void
cg_queue_insert(CgCounters *c, int slot)
{
	CgSession  *s = &cg_sessions[slot];
	uint64		ticket = pg_atomic_read_u64(&s->wait_ticket);
	int			after = c->wait_tail;

	while (after >= 0 &&
		   pg_atomic_read_u64(&cg_sessions[after].wait_ticket) > ticket)
		after = cg_sessions[after].wait_prev;
	s->wait_prev = after;
	s->wait_next = after >= 0 ? cg_sessions[after].wait_next : c->wait_head;
	if (s->wait_next >= 0)
		cg_sessions[s->wait_next].wait_prev = slot;
	else
		c->wait_tail = slot;
	if (after >= 0)
		cg_sessions[after].wait_next = slot;
	else
		c->wait_head = slot;
	pg_atomic_fetch_add_u32(&c->waiting, 1);
}

/*
 * cg_queue_unlink: take session slot "slot" out of c's queue.  Same
 * locking as cg_queue_insert.
 */
void
cg_queue_unlink(CgCounters *c, int slot)
{
	CgSession  *s = &cg_sessions[slot];

	if (s->wait_prev >= 0)
		cg_sessions[s->wait_prev].wait_next = s->wait_next;
	else
		c->wait_head = s->wait_next;
	if (s->wait_next >= 0)
		cg_sessions[s->wait_next].wait_prev = s->wait_prev;
	else
		c->wait_tail = s->wait_prev;
	s->wait_prev = s->wait_next = -1;
	pg_atomic_fetch_sub_u32(&c->waiting, 1);
}

/* Set the latch of the backend of session slot "slot" (its PGPROC). */
void
cg_wake_session(int slot)
{
	SetLatch(&GetPGProcByNumber(slot)->procLatch);
}

/*
 * cg_wake_queue: a place may have freed in the budget of counter slot
 * "slot" (or the head left): wake its oldest waiter, and no other.
 * Caller holds cg_shared->lock, shared or exclusive; no-op for a negative
 * slot or an empty queue.
 */
void
cg_wake_queue(int slot)
{
	CgCounters *c;
	int			head;

	if (slot < 0)
		return;
	c = &cg_slots[slot].c;
	SpinLockAcquire(&c->wait_mutex);
	head = c->wait_head;
	SpinLockRelease(&c->wait_mutex);
	if (head >= 0)
		cg_wake_session(head);
}

/*---- joining and leaving ----*/

/* Seconds since the wait began, for messages. */
static double
cg_waited_seconds(void)
{
	long		secs;
	int			usecs;

	TimestampDifference(cg_wait_start, GetCurrentTimestamp(), &secs, &usecs);
	return secs + usecs / 1000000.0;
}

/*
 * cg_room_to_wait: whether a login of budget (an index of the active set)
 * may wait, holding its process slot: the free process slots must still
 * cover the superuser-reserved and reserved connections and the unused
 * floors of the other budgets (the file header).  When not, fills
 * l->room_free and l->room_needed for the DETAIL.  Caller holds the lock,
 * shared.  Walks at most that many entries of PostgreSQL's free list.
 */
bool
cg_room_to_wait(int budget, CgLogin *l)
{
	uint32		unused = pg_atomic_read_u32(&cg_shared->floors_unused);
	uint32		own = cg_unused_floor(budget);
	int			needed;

	needed = CG_SUPERUSER_RESERVED() + CG_RESERVED_CONNECTIONS() +
		(int) (unused - Min(own, unused));
	if (cg_have_free_procs(needed))
		return true;
	l->room_free = cg_free_procs();
	l->room_needed = needed;
	return false;
}

/* A refusal of a login (or late name) over a budget, in its counters. */
static void
cg_count_refusal(CgCounters *c)
{
	pg_atomic_fetch_add_u64(&c->refused, 1);
	cg_note_refused(c);
}

/*
 * cg_charge_or_queue: charge session slot "slot" (s) to l->budget, whose
 * budget has login_wait, below limit, when nobody waits for it; else
 * queue it unless max_waiting already wait (CG_QUEUE_FULL) or there is no
 * room to wait (CG_NO_ROOM).  Returns CG_ADMITTED (charged, l->in_use
 * set), CG_WAIT (queued: cg_wait_for_place decides), or a refusal, which
 * is counted.  The name s waits under must be in s->wait_name.  Caller
 * holds the lock, shared.
 */
CgVerdict
cg_charge_or_queue(CgSession *s, int slot, CgLogin *l, int64 limit,
				   int32 max_waiting)
{
	CgCounters *c = cg_counters(l->budget);
	CgVerdict	v;

	/* likely to wait: only with room (re-checked while waiting) */
	if ((pg_atomic_read_u32(&c->waiting) > 0 ||
		 pg_atomic_read_u32(&c->total) >= (uint64) limit) &&
		!cg_room_to_wait(l->budget, l))
	{
		l->in_use = pg_atomic_read_u32(&c->total);
		cg_count_refusal(c);
		return CG_NO_ROOM;
	}

	SpinLockAcquire(&c->wait_mutex);
	if (c->wait_head < 0 && cg_charge_budget(l->budget, limit, &l->in_use))
		v = CG_ADMITTED;
	else if (pg_atomic_read_u32(&c->waiting) >= (uint32) max_waiting)
		v = CG_QUEUE_FULL;
	else
	{
		s->wait_slot = cg_budget_slot(l->budget);
		pg_atomic_write_u64(&s->wait_ticket,
							pg_atomic_fetch_add_u64(&cg_shared->wait_ticket_next, 1));
		pg_atomic_fetch_add_u32(&cg_shared->nwaiting, 1);
		cg_queue_insert(c, slot);
		cg_history_sessions(1, true);
		v = CG_WAIT;
	}
	SpinLockRelease(&c->wait_mutex);

	if (v == CG_QUEUE_FULL)
	{
		l->in_use = pg_atomic_read_u32(&c->total);
		l->waiting = pg_atomic_read_u32(&c->waiting);
		cg_count_refusal(c);
	}
	else if (v == CG_WAIT)
	{
		pg_atomic_fetch_add_u64(&c->waited, 1);
		cg_wait_slot = slot;
		/* one login_wait in all, paced for a token (ratelimit.c) or not */
		if (l->wait_start == 0)
			l->wait_start = GetCurrentTimestamp();
		cg_wait_start = l->wait_start;
	}
	return v;
}

/*
 * cg_leave_queue_locked: leave the queue; the time waited goes to the
 * budget's wait_seconds_total (and wait_timeouts when timed_out).
 * Returns the counter slot whose new head the caller wakes when this
 * login was the head (it may find a place), else CG_NOT_CHARGED.  Caller
 * holds the lock, shared.
 */
static int
cg_leave_queue_locked(bool timed_out)
{
	CgSession  *s = &cg_sessions[cg_wait_slot];
	int			wslot = s->wait_slot;
	bool		was_head = false;
	TimestampTz now = GetCurrentTimestamp();

	if (wslot >= 0)
	{
		CgCounters *c = &cg_slots[wslot].c;

		SpinLockAcquire(&c->wait_mutex);
		was_head = (c->wait_head == cg_wait_slot);
		cg_queue_unlink(c, cg_wait_slot);
		SpinLockRelease(&c->wait_mutex);
		pg_atomic_fetch_add_u64(&c->wait_us_total,
								(uint64) Max(now - cg_wait_start, 0));
		if (timed_out)
			pg_atomic_fetch_add_u64(&c->wait_timeouts, 1);
	}
	pg_atomic_write_u64(&s->wait_ticket, 0);
	pg_atomic_fetch_sub_u32(&cg_shared->nwaiting, 1);
	s->wait_slot = CG_NOT_CHARGED;
	cg_wait_slot = -1;
	cg_history_sessions(-1, true);
	return was_head ? wslot : CG_NOT_CHARGED;
}

/*
 * cg_leave_queue: cg_leave_queue_locked taking the lock, then wake the
 * next waiter when this one was the oldest.
 */
void
cg_leave_queue(bool timed_out)
{
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	cg_wake_queue(cg_leave_queue_locked(timed_out));
	LWLockRelease(cg_shared->lock);
}

/*
 * cg_waitq_exit: a login or late name still waiting (cancel, terminate, a
 * FATAL, an ERROR of the statement that waited) leaves the queue.  The
 * exit callback's first step.
 */
void
cg_waitq_exit(void)
{
	if (cg_wait_slot >= 0 && cg_shared != NULL)
		cg_leave_queue(false);
}

/*---- the wait ----*/

/*
 * cg_wait_for_place: s (session slot "slot") is queued
 * (cg_charge_or_queue); wait, holding no lock, until it is the oldest
 * waiter of its budget and a place is free, or until login_wait has
 * passed (CG_REFUSED), or there is no room to wait any more (CG_NO_ROOM).
 * A publish may move the waiter to another budget's queue (or none:
 * admitted unbudgeted).  On CG_ADMITTED the login is charged to l->budget
 * and the lock is still held, shared: the caller finishes the login (or
 * the re-charge) under it and releases it.  Ends the backend when the
 * client went away.  CHECK_FOR_INTERRUPTS may throw (cancel, terminate):
 * the caller leaves the queue then (cg_waitq_exit).
 */
CgVerdict
cg_wait_for_place(CgSession *s, int slot, CgLogin *l)
{
	TimestampTz deadline = cg_wait_start + l->hit.login_wait_ms * 1000;

	/* authentication_timeout would end a login: stop 100 ms short of it */
	if (ClientAuthInProgress && get_timeout_active(STATEMENT_TIMEOUT))
		deadline = Min(deadline,
					   get_timeout_finish_time(STATEMENT_TIMEOUT) - 100 * 1000);

	for (;;)
	{
		TimestampTz now;
		int			wslot;
		int			budget;
		bool		head = false;
		long		sleep_ms;

		LWLockAcquire(cg_shared->lock, LW_SHARED);
		/* a publish re-matches waiters: the slot is one of the active set */
		wslot = s->wait_slot;
		budget = wslot >= 0 ? cg_slots[wslot].index[cg_shared->active] :
			CG_UNBUDGETED;
		if (budget < 0)
			budget = CG_UNBUDGETED;
		if (wslot >= 0)
		{
			CgCounters *c = &cg_slots[wslot].c;

			SpinLockAcquire(&c->wait_mutex);
			head = (c->wait_head == slot);
			SpinLockRelease(&c->wait_mutex);
		}
		if (budget == CG_UNBUDGETED || head)
		{
			int64		limit = -1;

			if (budget >= 0 && cg_mode == CG_MODE_ENFORCE &&
				!cg_budgets[budget].monitor)
				limit = cg_budgets[budget].max_connections;
			if (cg_charge_budget(budget, limit, &l->in_use))
			{
				int			next;

				l->waited_s = cg_waited_seconds();
				next = cg_leave_queue_locked(false);
				cg_note_budget(l, budget);
				/* the next waiter may find a place too (a raised limit) */
				if (limit < 0 || l->in_use < (uint64) limit)
					cg_wake_queue(next);
				return CG_ADMITTED;
			}
		}
		cg_note_budget(l, budget);
		l->in_use = pg_atomic_read_u32(&cg_counters(budget)->total);
		if (!cg_room_to_wait(budget, l))
		{
			l->waited_s = cg_waited_seconds();
			cg_wake_queue(cg_leave_queue_locked(false));
			cg_count_refusal(cg_counters(budget));
			LWLockRelease(cg_shared->lock);
			return CG_NO_ROOM;
		}
		LWLockRelease(cg_shared->lock);

		now = GetCurrentTimestamp();
		if (now >= deadline)
		{
			l->waited_s = cg_waited_seconds();
			LWLockAcquire(cg_shared->lock, LW_SHARED);
			wslot = s->wait_slot;
			cg_wake_queue(cg_leave_queue_locked(true));
			if (wslot >= 0)
				cg_count_refusal(&cg_slots[wslot].c);
			LWLockRelease(cg_shared->lock);
			return CG_REFUSED;
		}
		/* a client that went away frees its place in the queue */
		if (!pq_check_connection())
		{
			cg_leave_queue(false);
			ereport(FATAL,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("connection budget \"%s\": the client went away while waiting for a place",
							l->budget_name)));
		}
		sleep_ms = Min((long) CG_WAIT_TICK_MS, (long) ((deadline - now + 999) / 1000));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, cg_wait_event_login());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*---- the table's check ----*/

/*
 * cg_check_waits_fit: after an INSERT or UPDATE of a table with
 * login_wait (1.1 and later), refuse the statement when the logins that
 * may wait, with the floors, do not fit the server's normal slots: the
 * sum over enforce budgets with a login_wait of their max_waiting (NULL:
 * cg_default_max_waiting()) plus the sum of the enforce budgets'
 * min_connections.  A waiting login holds a process slot: waits that
 * cannot all be held would be refused for want of room anyway, and say so
 * to the DBA now rather than to a client later.  Called by
 * conngov.budgets_changed() (notify.c).
 */
void
cg_check_waits_fit(Relation rel)
{
	bool		isnull;
	int64		waits;
	int64		floors;
	int			slots = cg_normal_slots();
	StringInfoData where;
	StringInfoData limit;
	StringInfoData sql;

	if (!cg_rel_has_column(rel, "max_waiting"))
		return;

	/* the budgets in force here, with their limit here (1.2, notify.c) */
	initStringInfo(&where);
	initStringInfo(&limit);
	cg_budgets_here(rel, &where, &limit);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT pg_catalog.sum(CASE WHEN login_wait IS NULL THEN 0"
					 " ELSE COALESCE(max_waiting, LEAST(%s, %d)) END)::pg_catalog.int8,"
					 " pg_catalog.sum(LEAST(min_connections, %s))::pg_catalog.int8"
					 " FROM conngov.budgets WHERE %s",
					 limit.data, CG_DEFAULT_MAX_WAITING, limit.data, where.data);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql.data, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not sum conngov.budgets");
	waits = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		waits = 0;
	floors = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		floors = 0;
	SPI_finish();

	if (waits > 0 && waits + floors > slots)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connection budget waits do not fit the server: " INT64_FORMAT " logins may wait and " INT64_FORMAT " connections are guaranteed, " INT64_FORMAT " more than the server's %d normal slots",
						waits, floors, waits + floors - slots, slots),
				 errdetail("A waiting login holds a server connection slot; max_waiting NULL means the budget's max_connections, at most %d.",
						   CG_DEFAULT_MAX_WAITING),
				 errhint("Lower max_waiting or min_connections of some budgets, or raise max_connections of the server.")));
}
