/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		Login-rate limits (login_rate, login_burst): one atomic word per
 *		budget, a GCRA, and pacing logins that may wait for their token.
 *
 * The generic cell rate algorithm keeps, per budget, one theoretical
 * arrival time (TAT, nanoseconds of CLOCK_MONOTONIC, in the budget's
 * counter slot so that it survives publishes).  With T = 1 / login_rate
 * (rounded up to a nanosecond, so the rate errs low) and a tolerance of
 * (login_burst - 1) * T, a login at time now conforms when
 * max(TAT, now) - now <= tolerance, and then sets TAT to max(TAT, now) + T
 * by compare-and-swap: no lock, and two logins racing for the last token
 * cannot both get it (the loser sees the new TAT and is judged by it).
 * Over any interval of t seconds at most login_rate * t + login_burst
 * logins conform: the TAT only ever moves forward by T per admitted login
 * (or jumps forward to now + T after an idle spell), never back, so the
 * bound holds under any interleaving.  A token is never given back except
 * when nobody took one after it (cg_rate_refund): giving it back later
 * would let the logins after it count as earlier than they were.
 *
 * The check runs last in the login path, after the budget's limit and the
 * floors (auth.c, cg_after_charge_locked): a login refused for the limit
 * or the floors never reaches it and uses no token.  A login refused for
 * the rate gives its place back at once, under the same shared lock.
 * Exempt logins, unbudgeted ones and conngov.mode = off are not rated and
 * take no token; a monitor budget (or conngov.mode = monitor) takes the
 * tokens of the logins it would admit and records the others as
 * would_refuse.  Late naming is rated like a login (naming.c).
 *
 * Pacing: with login_wait, a login whose token comes within what is left
 * of its wait reserves the token (the same compare-and-swap, the TAT moved
 * past it), gives its place back and sleeps on its latch, holding no lock,
 * until the token is due; then it goes through the login path again with
 * the token in hand.  Reservations are handed out in TAT order, so paced
 * logins are admitted first come, first served.  The waiting rules of
 * waitq.c apply: a login may start, and go on, pacing only while the free
 * process slots cover the reserved connections and the others' unused
 * floors (cg_room_to_wait); otherwise it is refused at once.  It can be
 * cancelled or terminated like any backend, and a client that goes away
 * ends it; the exit callback gives back a token never used
 * (cg_rate_exit).
 *
 * Lock rules: cg_rate_check_locked runs under cg_shared->lock, shared (the
 * caller's); the TAT is an atomic, changed by compare-and-swap only.
 * cg_pace takes the lock shared for each look at the room, never across
 * its sleep.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/ratelimit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "libpq/libpq.h"
#include "miscadmin.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* The table keeps login_rate and login_burst in these ranges. */
#define CG_MIN_LOGIN_RATE	0.001
#define CG_MAX_LOGIN_RATE	1000000.0
#define CG_MAX_LOGIN_BURST	1000000

/* A paced login looks at its client and the room at least this often. */
#define CG_PACE_TICK_MS		100

/* The token this backend reserved and has not used yet (pacing), or -1. */
static int	cg_held_slot = -1;
static uint64 cg_held_tat = 0;

/* CLOCK_MONOTONIC in nanoseconds: the same clock in every backend. */
static uint64
cg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * UINT64CONST(1000000000) + (uint64) ts.tv_nsec;
}

/*
 * cg_rate_compile: a loaded row's login_rate and login_burst as the GCRA's
 * interval and tolerance.  login_rate 0 (NULL) means no limit; login_burst
 * 0 (NULL) means the rate rounded up, at least 1.  Clamped to the table's
 * ranges, so nothing overflows whatever the row says.  Called by the
 * loader for each row.
 */
void
cg_rate_compile(CgBudget *b)
{
	double		rate = b->login_rate;

	if (!(rate > 0))
	{
		b->login_rate = 0;
		b->login_burst = 0;
		b->rate_interval_ns = 0;
		b->rate_tolerance_ns = 0;
		return;
	}
	rate = Min(Max(rate, CG_MIN_LOGIN_RATE), CG_MAX_LOGIN_RATE);
	b->rate_interval_ns = (int64) ceil(1e9 / rate);
	if (b->login_burst <= 0)
		b->login_burst = Max((int32) ceil(rate), 1);
	b->login_burst = Min(b->login_burst, CG_MAX_LOGIN_BURST);
	b->rate_tolerance_ns = (int64) (b->login_burst - 1) * b->rate_interval_ns;
}

/*
 * cg_pace_left_ns: how long a login of budget b (l->hit) may still pace:
 * what is left of login_wait since it began to wait, and, during
 * authentication, until 100 ms before authentication_timeout would end
 * it.  0 when the budget has no login_wait.
 */
static int64
cg_pace_left_ns(const CgBudget *b, const CgLogin *l)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz start = l->wait_start != 0 ? l->wait_start : now;
	TimestampTz deadline;

	if (b->login_wait_ms <= 0)
		return 0;
	deadline = start + b->login_wait_ms * 1000;
	if (ClientAuthInProgress && get_timeout_active(STATEMENT_TIMEOUT))
		deadline = Min(deadline,
					   get_timeout_finish_time(STATEMENT_TIMEOUT) - 100 * 1000);
	return deadline > now ? (int64) (deadline - now) * 1000 : 0;
}

/*
 * cg_rate_check_locked: whether a login charged to l->budget (place and
 * floors already granted) may have a token now.  Returns CG_ADMITTED (a
 * token taken, or none needed), CG_PACE (a token reserved for later, within
 * its login_wait: l->pace_ns until it is due; the caller gives the place
 * back and calls cg_pace), or CG_REFUSED_RATE (counted; l->retry_ns until
 * the next token, and l->room_needed > 0 when it was refused because there
 * was no room to wait).  A login that brings a token reserved for this
 * budget uses it.  Caller holds cg_shared->lock, shared.
 */
CgVerdict
cg_rate_check_locked(CgLogin *l)
{
	const CgBudget *b;
	CgCounters *c;
	bool		enforce;
	uint64		now;
	uint64		old;
	int64		max_wait_ns = 0;
	bool		room_checked = false;

	if (l->budget < 0 || l->exempt || cg_mode == CG_MODE_OFF)
		return CG_ADMITTED;
	b = &cg_budgets[l->budget];
	if (l->has_token)
	{
		if (l->token_slot == b->slot)
		{
			/* paced: its token is due */
			l->has_token = false;
			cg_held_slot = -1;
			return CG_ADMITTED;
		}
		/* re-matched to another budget while it paced */
		cg_rate_refund(l);
	}
	if (b->rate_interval_ns == 0)
		return CG_ADMITTED;
	c = cg_counters(l->budget);
	enforce = (cg_mode == CG_MODE_ENFORCE && !b->monitor);
	if (enforce)
		max_wait_ns = cg_pace_left_ns(b, l);

	now = cg_now_ns();
	old = pg_atomic_read_u64(&c->rate_tat);
	for (;;)
	{
		uint64		tat = Max(old, now);
		int64		early = (int64) (tat - now) - b->rate_tolerance_ns;

		if (early > 0)
		{
			/* its token is not due yet: pace (with room), or refuse */
			if (enforce && early <= max_wait_ns && !room_checked)
			{
				room_checked = true;
				if (!cg_room_to_wait(l->budget, l))
					max_wait_ns = 0;
			}
			if (!enforce || early > max_wait_ns)
			{
				l->retry_ns = early;
				if (!enforce)
				{
					/* monitor: admitted, recorded, no token taken */
					l->would_refuse_rate = true;
					pg_atomic_fetch_add_u64(&c->would_refuse, 1);
					return CG_ADMITTED;
				}
				/* not last_refused_at: the budget's connections are fine */
				pg_atomic_fetch_add_u64(&c->refused_rate, 1);
				cg_history_note(c, pg_atomic_read_u32(&c->total));
				return CG_REFUSED_RATE;
			}
		}
		if (pg_atomic_compare_exchange_u64(&c->rate_tat, &old,
										   tat + b->rate_interval_ns))
		{
			if (early <= 0)
				return CG_ADMITTED;
			/* reserved: due in "early" ns */
			l->has_token = true;
			l->token_slot = b->slot;
			l->token_tat = tat + b->rate_interval_ns;
			l->pace_ns = early;
			l->room_needed = 0;
			if (l->wait_start == 0)
				l->wait_start = GetCurrentTimestamp();
			cg_held_slot = l->token_slot;
			cg_held_tat = l->token_tat;
			pg_atomic_fetch_add_u64(&c->paced, 1);
			return CG_PACE;
		}
		/* another login moved the TAT: judge again by the new one */
	}
}

/*
 * cg_rate_refund: give back the token reserved for l when no login
 * reserved or took one after it (the TAT is still the one it set); else
 * the token stays used, which errs on the side of the rate (the file
 * header).  No lock needed: one compare-and-swap.
 */
void
cg_rate_refund(CgLogin *l)
{
	if (l->has_token)
	{
		CgSlot	   *cs = &cg_slots[l->token_slot];
		uint64		expected = l->token_tat;

		(void) pg_atomic_compare_exchange_u64(&cs->c.rate_tat, &expected,
											  l->token_tat - l->hit.rate_interval_ns);
		l->has_token = false;
	}
	cg_held_slot = -1;
}

/*
 * cg_rate_exit: a backend that leaves with a token reserved and not used
 * (terminated while pacing, a FATAL before it was admitted) gives it back
 * when nobody came after it.  Called by the exit callback.
 */
void
cg_rate_exit(void)
{
	if (cg_held_slot >= 0 && cg_shared != NULL)
	{
		uint64		expected = cg_held_tat;
		int32		budget;
		int64		interval = 0;

		LWLockAcquire(cg_shared->lock, LW_SHARED);
		budget = cg_slots[cg_held_slot].index[cg_shared->active];
		if (budget >= 0)
			interval = cg_budgets[budget].rate_interval_ns;
		if (interval > 0)
			(void) pg_atomic_compare_exchange_u64(&cg_slots[cg_held_slot].c.rate_tat,
												  &expected,
												  cg_held_tat - interval);
		LWLockRelease(cg_shared->lock);
		cg_held_slot = -1;
	}
}

/*
 * cg_count_rate_refusal: a paced login of counter slot "slot" refused: its
 * counter and its minute in the usage history (history.c), which needs the
 * lock, shared.
 */
static void
cg_count_rate_refusal(int slot)
{
	CgCounters *c = &cg_slots[slot].c;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	pg_atomic_fetch_add_u64(&c->refused_rate, 1);
	cg_history_note(c, pg_atomic_read_u32(&c->total));
	LWLockRelease(cg_shared->lock);
}

/*
 * cg_pace: the login's token is reserved (CG_PACE); sleep, holding no lock,
 * until it is due.  Returns CG_ADMITTED when it is (the caller goes through
 * the login path again, token in hand), or CG_REFUSED_RATE (counted, the
 * token given back when it can be) when there is no room to wait any more.
 * Ends the backend when the client went away; CHECK_FOR_INTERRUPTS may
 * throw (cancel, terminate), and the exit callback or the caller gives the
 * token back.
 */
CgVerdict
cg_pace(CgLogin *l)
{
	uint64		due = l->token_tat - l->hit.rate_interval_ns -
		l->hit.rate_tolerance_ns;

	for (;;)
	{
		uint64		now = cg_now_ns();
		int			budget;
		bool		room = true;
		long		sleep_ms;

		if (now >= due)
			return CG_ADMITTED;

		/* waiting never takes reserved room (waitq.c) */
		LWLockAcquire(cg_shared->lock, LW_SHARED);
		budget = cg_slots[l->token_slot].index[cg_shared->active];
		if (budget >= 0)
			room = cg_room_to_wait(budget, l);
		LWLockRelease(cg_shared->lock);
		if (budget < 0)
			return CG_ADMITTED; /* the budget is gone: judged again */
		if (!room)
		{
			l->retry_ns = (int64) (due - now);
			cg_rate_refund(l);
			cg_count_rate_refusal(l->token_slot);
			return CG_REFUSED_RATE;
		}

		/* a client that went away gives its token back */
		if (!pq_check_connection())
		{
			cg_rate_refund(l);
			ereport(FATAL,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("connection budget \"%s\": the client went away while waiting for its login token",
							l->budget_name)));
		}
		sleep_ms = (long) Min((int64) CG_PACE_TICK_MS,
							  (int64) ((due - now + 999999) / 1000000));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 1), cg_wait_event_login());
		ResetLatch(MyLatch);
		/*
		 * Late naming (a statement waits): a cancel or statement_timeout
		 * refuses the name, as running out of room does, rather than
		 * leave the session charged to a budget it has no token for.  A
		 * login (or a terminate) ends the backend as usual.
		 */
		if (QueryCancelPending && !ClientAuthInProgress)
		{
			QueryCancelPending = false;
			l->retry_ns = (int64) (due - Min(due, cg_now_ns()));
			cg_rate_refund(l);
			cg_count_rate_refusal(l->token_slot);
			return CG_REFUSED_RATE;
		}
		CHECK_FOR_INTERRUPTS();
	}
}
