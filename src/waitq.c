/*-------------------------------------------------------------------------
 *
 * waitq.c
 *		Waiting for a place (login_wait, max_waiting): the queue of logins
 *		over their budget.
 *
 * A login over a budget with login_wait takes a ticket (a global counter:
 * smaller is older) and waits on the budget's condition variable, without
 * any lock, until it is the oldest waiter of the budget and a place is
 * free; a release broadcasts.  A newcomer finding others waiting queues
 * behind them.  The wait ends at login_wait (refused, DETAIL with the time
 * waited), or before authentication_timeout would end it, or when the
 * client goes away (checked every CG_WAIT_TICK_MS); the exit callback
 * leaves the queue on every path (cancel, terminate, FATAL).
 *
 * Lock rules: the ticket and the waiting counts change under
 * cg_shared->lock, shared (a publish re-matches waiters under it,
 * exclusive); the sleep holds no lock.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/waitq.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/libpq.h"
#include "miscadmin.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* This backend's slot while it waits for a place (login_wait), else -1. */
static int	cg_wait_slot = -1;
static TimestampTz cg_wait_start = 0;

/* Seconds since the wait began, for messages. */
double
cg_waited_seconds(void)
{
	long		secs;
	int			usecs;

	TimestampDifference(cg_wait_start, GetCurrentTimestamp(), &secs, &usecs);
	return secs + usecs / 1000000.0;
}

/*
 * cg_join_queue: take a ticket for budget and count this login as
 * waiting.  Caller holds the lock, shared, and has checked max_waiting.
 */
void
cg_join_queue(CgSession *s, int slot, int budget)
{
	CgCounters *c = cg_counters(budget);

	s->wait_slot = cg_budget_slot(budget);
	pg_write_barrier();
	pg_atomic_write_u64(&s->wait_ticket,
						pg_atomic_fetch_add_u64(&cg_shared->wait_ticket_next, 1));
	pg_atomic_fetch_add_u32(&c->waiting, 1);
	pg_atomic_fetch_add_u64(&c->waited, 1);
	cg_wait_slot = slot;
	cg_wait_start = GetCurrentTimestamp();
}

/*
 * cg_leave_queue_locked: give the ticket back; the time waited goes to
 * the budget's wait_seconds_total (and wait_timeouts when timed_out).
 * Returns the budget whose waiters should look again (CG_NOT_CHARGED if
 * none).  Caller holds the lock, shared.
 */
static int
cg_leave_queue_locked(bool timed_out)
{
	CgSession  *s = &cg_sessions[cg_wait_slot];
	int			wslot = s->wait_slot;
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_write_u64(&s->wait_ticket, 0);
	s->wait_slot = CG_NOT_CHARGED;
	cg_wait_slot = -1;
	if (wslot < 0)
		return CG_NOT_CHARGED;
	pg_atomic_fetch_sub_u32(&cg_slots[wslot].c.waiting, 1);
	pg_atomic_fetch_add_u64(&cg_slots[wslot].c.wait_us_total,
							(uint64) Max(now - cg_wait_start, 0));
	if (timed_out)
		pg_atomic_fetch_add_u64(&cg_slots[wslot].c.wait_timeouts, 1);
	return wslot;
}

/*
 * cg_leave_queue: cg_leave_queue_locked taking the lock, then wake the
 * next waiter (it may be the oldest now).  Also the exit callback's
 * first step: cancel, terminate, a lost client.
 */
void
cg_leave_queue(bool timed_out)
{
	int			wslot;

	ConditionVariableCancelSleep();
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	wslot = cg_leave_queue_locked(timed_out);
	if (wslot >= 0)
		ConditionVariableBroadcast(&cg_slots[wslot].c.wait_cv);
	LWLockRelease(cg_shared->lock);
}

/*
 * cg_oldest_waiter: whether no other login waits for the budget of
 * counter slot wslot with an older ticket.  One pass over the session slots: only waiting logins
 * run it, when woken.  Caller holds the lock, shared.
 */
static bool
cg_oldest_waiter(int wslot, uint64 ticket)
{
	int			i;

	for (i = 0; i < cg_nsessions; i++)
	{
		uint64		t;

		if (i == cg_wait_slot)
			continue;
		t = pg_atomic_read_u64(&cg_sessions[i].wait_ticket);
		pg_read_barrier();
		if (t != 0 && t < ticket && cg_sessions[i].wait_slot == wslot)
			return false;
	}
	return true;
}

/*
 * cg_waitq_exit: the exit callback's first step: a login still waiting
 * (cancel, terminate, a FATAL) leaves the queue.
 */
void
cg_waitq_exit(void)
{
	if (cg_wait_slot >= 0)
		cg_leave_queue(false);
}

/*
 * cg_wait_for_place: the login is queued (cg_join_queue); wait, holding
 * no lock, until it is the oldest waiter of its budget and a place is
 * free, or until login_wait has passed (CG_REFUSED), whichever comes
 * first.  A publish may move the waiter to another budget (or none:
 * admitted unbudgeted).  Ends the backend when the client went away.
 */
CgVerdict
cg_wait_for_place(CgSession *s, int slot, CgLogin *l)
{
	uint64		ticket = pg_atomic_read_u64(&s->wait_ticket);
	TimestampTz deadline = cg_wait_start + l->hit.login_wait_ms * 1000;

	/* authentication_timeout would end the login: stop 100 ms short of it */
	if (get_timeout_active(STATEMENT_TIMEOUT))
		deadline = Min(deadline,
					   get_timeout_finish_time(STATEMENT_TIMEOUT) - 100 * 1000);

	for (;;)
	{
		ConditionVariable *cv;
		TimestampTz now;
		int			wslot;
		int			budget;
		int			wake;
		long		sleep_ms;

		LWLockAcquire(cg_shared->lock, LW_SHARED);
		/* a publish re-matches waiters: the slot is one of the active set */
		wslot = s->wait_slot;
		budget = wslot >= 0 ? cg_slots[wslot].index[cg_shared->active] :
			CG_UNBUDGETED;
		if (budget < 0)
			budget = CG_UNBUDGETED;
		if (budget == CG_UNBUDGETED || cg_oldest_waiter(wslot, ticket))
		{
			int64		limit = -1;

			if (budget >= 0 && cg_mode == CG_MODE_ENFORCE &&
				!cg_budgets[budget].monitor)
				limit = cg_budgets[budget].max_connections;
			if (cg_charge_budget(budget, limit, &l->in_use))
			{
				CgVerdict	v;

				l->waited_s = cg_waited_seconds();
				wake = cg_leave_queue_locked(false);
				cg_note_budget(l, budget);
				v = cg_after_charge_locked(s, slot, l);
				/* the next waiter may find a place too */
				if (wake >= 0)
					ConditionVariableBroadcast(&cg_slots[wake].c.wait_cv);
				LWLockRelease(cg_shared->lock);
				ConditionVariableCancelSleep();
				return v;
			}
		}
		cv = &cg_slots[wslot].c.wait_cv;
		cg_note_budget(l, budget);
		l->in_use = pg_atomic_read_u32(&cg_counters(budget)->total);
		LWLockRelease(cg_shared->lock);

		now = GetCurrentTimestamp();
		if (now >= deadline)
		{
			l->waited_s = cg_waited_seconds();
			LWLockAcquire(cg_shared->lock, LW_SHARED);
			wake = cg_leave_queue_locked(true);
			if (wake >= 0)
			{
				pg_atomic_fetch_add_u64(&cg_slots[wake].c.refused, 1);
				pg_atomic_write_u64(&cg_slots[wake].c.last_refused_at,
									(uint64) now);
				ConditionVariableBroadcast(&cg_slots[wake].c.wait_cv);
			}
			LWLockRelease(cg_shared->lock);
			ConditionVariableCancelSleep();
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
		(void) ConditionVariableTimedSleep(cv, sleep_ms, cg_wait_event_login());
	}
}
