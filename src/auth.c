/*-------------------------------------------------------------------------
 *
 * auth.c
 *		The login check: match a new connection to a budget, charge it or
 *		refuse it, and release the charge however the session ends.
 *
 * cg_ClientAuthentication runs after authentication succeeded, before the
 * backend is attached to its database: only shared memory and shared
 * catalogs (pg_authid, pg_auth_members, to know whether the role is exempt)
 * are read.  The shared lock is held only to match and charge; the charge
 * is one compare-and-swap that increments only below the limit, so refused
 * attempts never inflate the count and two logins racing for the last place
 * never both fail.  The exit callback is registered before the charge is
 * taken, so a FATAL later in startup (unknown database, PostgreSQL's own
 * reserved-slot refusal) or any other exit gives it back.
 *
 * Floors (1.1, cg_floors_refuse).  A login not within its own budget's
 * floor is refused when the free normal slots are fewer than the unused
 * floors of the enforce budgets (floors_unused, kept exact by every charge
 * and release).  Racing logins must err on the side of the floor, so the
 * free slots are counted FIRST and the unused floors read AFTER:
 *  - every login holds its PGPROC before it gets here, so the free count
 *    already leaves out each login racing with this one, admitted or not;
 *  - a floor budget's session that ends gives its charge back (unused
 *    floors go up) before its PGPROC is freed (free slots go up), so a
 *    later read of the unused floors is never older than the free count;
 *  - a floor budget's login that is charged meanwhile lowers the unused
 *    floors, but its PGPROC was already counted as taken.
 * HaveNFreeProcs() needs the number to look for before it counts, so the
 * unused floors are read once before (the number) and once after; when
 * they went up in between, the count is made again.  Reading them too high
 * refuses one login too many in a race, never one too few.  A login
 * within its floor whose PGPROC is there but whose reserved-slot check
 * would fail because refused logins still hold theirs waits up to
 * CG_TRANSIENT_WAIT_MS for them to leave.  With no floor configured the
 * check is one flag test.
 *
 * Waiting (1.1, cg_wait_for_place).  A login over a budget with
 * login_wait takes a ticket (a global counter: smaller is older) and waits
 * on the budget's condition variable, without any lock, until it is the
 * oldest waiter of the budget and a place is free; a release broadcasts.
 * A newcomer finding others waiting queues behind them.  The wait ends at
 * login_wait (refused, DETAIL with the time waited), or before
 * authentication_timeout would end it, or when the client goes away
 * (checked every CG_WAIT_TICK_MS); the exit callback leaves the queue on
 * every path (cancel, terminate, FATAL).
 *
 * The same charge and refusal serve late naming (cg_recharge_if_renamed,
 * called by statements.c): the new budget is charged first, below its
 * limit, and only then is the old charge given back, all under the shared
 * lock, so a publish never sees the session charged twice or not at all.
 * The loader re-applies conngov.exempt_roles to open sessions
 * (cg_recheck_exempt).  The emit_log_hook hides refusals from the server
 * log as conngov.log_refusals says, and turns PostgreSQL's "terminating
 * connection due to administrator command" into the idle ending's own
 * message when, and only when, the worker marked this session before its
 * SIGTERM.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netdb.h>

#include "common/hashfn.h"
#include "common/ip.h"
#include "lib/stringinfo.h"
#include "libpq/auth.h"
#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* How long a login within its floor waits for refused logins to leave. */
#define CG_TRANSIENT_WAIT_MS	1000
/* Budgets named in a floor refusal's DETAIL. */
#define CG_FLOOR_NAMES	5

static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* This backend's slot in cg_sessions while charged, else -1. */
static int	cg_my_slot = -1;
static bool cg_exit_registered = false;
/* Set just before a refusal that conngov.log_refusals keeps from the log. */
static bool cg_hide_refusal = false;
/* This backend's slot while it waits for a place (login_wait), else -1. */
static int	cg_wait_slot = -1;
static TimestampTz cg_wait_start = 0;

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

static void cg_leave_queue(bool timed_out);

/* conngov.log_refusals = sampled: one line per budget per this period. */
#define CG_REFUSAL_LOG_PERIOD_MS	10000

/*
 * cg_release: before_shmem_exit callback giving the charge back.  Runs on
 * every exit path of a backend that got past cg_ClientAuthentication,
 * including FATAL errors later in startup.
 */
static void
cg_release(int code, Datum arg)
{
	CgSession  *s;
	int			wake = CG_NOT_CHARGED;

	if (cg_shared == NULL)
		return;
	if (cg_wait_slot >= 0)
		cg_leave_queue(false);
	if (cg_my_slot < 0)
		return;

	s = &cg_sessions[cg_my_slot];
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (s->pid == MyProcPid)
	{
		/* taken atomically: a publisher may be moving it right now */
		int			charge = (int32) pg_atomic_exchange_u32(&s->charge,
															(uint32) CG_NOT_CHARGED);

		/* a place freed: the oldest waiter takes it (the CV outlives publishes) */
		if (charge != CG_NOT_CHARGED && cg_release_slot(charge))
			wake = charge;
	}
	s->pid = 0;
	if (wake >= 0)
		ConditionVariableBroadcast(&cg_slots[wake].c.wait_cv);
	LWLockRelease(cg_shared->lock);
	cg_my_slot = -1;
}

/*
 * cg_is_exempt: superusers, roles with pg_use_reserved_connections (16+)
 * and members of conngov.exempt_roles are counted but never refused.
 * Reads pg_authid and pg_auth_members through the syscache.
 */
static bool
cg_is_exempt(const char *role_name)
{
	Oid			roleid = get_role_oid(role_name, true);
	const char *name;

	if (!OidIsValid(roleid))
		return false;
	if (superuser_arg(roleid) || cg_has_reserved_privilege(roleid))
		return true;

	for (name = cg_exempt_list; name != NULL && *name != '\0';
		 name += strlen(name) + 1)
	{
		Oid			exempt = get_role_oid(name, true);

		if (OidIsValid(exempt) && is_member_of_role(roleid, exempt))
			return true;
	}
	return false;
}

/*
 * cg_log_this_refusal: whether the FATAL of a refusal of budget goes to the
 * server log.  With conngov.log_refusals = sampled, the first refusal of a
 * budget is logged in full; later ones are counted, and the first one 10 s
 * or more after the last line writes one line with the count instead of
 * its own FATAL.  The client always gets the FATAL; stats() and events()
 * count every refusal.
 */
static bool
cg_log_this_refusal(const char *budget)
{
	CgRefusalLog *e;
	TimestampTz now;
	TimestampTz since = 0;
	uint32		count = 0;
	bool		full = false;

	if (cg_log_refusals != CG_LOG_REFUSALS_SAMPLED)
		return cg_log_refusals == CG_LOG_REFUSALS_ON;

	now = GetCurrentTimestamp();
	e = &cg_shared->refusal_log[hash_bytes((const unsigned char *) budget,
										   strlen(budget)) % CG_REFUSAL_LOG_SLOTS];
	SpinLockAcquire(&cg_shared->mutex);
	if (e->logged_at == 0 || strcmp(e->budget, budget) != 0)
	{
		strlcpy(e->budget, budget, NAMEDATALEN);
		e->logged_at = now;
		e->unlogged = 0;
		full = true;
	}
	else if (TimestampDifferenceExceeds(e->logged_at, now,
										CG_REFUSAL_LOG_PERIOD_MS))
	{
		/* quiet since the last line: this one starts a new series */
		full = (e->unlogged == 0);
		count = e->unlogged + 1;
		since = e->logged_at;
		e->logged_at = now;
		e->unlogged = 0;
	}
	else
		e->unlogged++;
	SpinLockRelease(&cg_shared->mutex);

	if (!full && count > 0)
		ereport(LOG,
				(errmsg("conngov: %u logins refused by connection budget \"%s\" in the last %.1f s",
						count, budget, (now - since) / 1000000.0),
				 errdetail("conngov.log_refusals is \"sampled\": one line per budget every %d s; stats() and events() count every refusal.",
						   CG_REFUSAL_LOG_PERIOD_MS / 1000)));
	return full;
}

/*
 * cg_refuse: the FATAL of a refused login (or late naming), with the
 * SPEC's wording; "extra" (or NULL) is one more sentence of DETAIL (how
 * long it waited, how many wait).  The message text is an API: libpq
 * clients cannot see the SQLSTATE of a refused login and match on it.  It
 * is the one server log line, as conngov.log_refusals says.
 */
static void
cg_refuse(const CgBudget *b, uint32 in_use, const char *extra)
{
	char		filter[3 * NAMEDATALEN + 64];

	snprintf(filter, sizeof(filter), "application_name LIKE '%s'", b->pattern);
	if (b->role_name[0] != '\0')
		snprintf(filter + strlen(filter), sizeof(filter) - strlen(filter),
				 " AND role_name = '%s'", b->role_name);
	if (b->database_name[0] != '\0')
		snprintf(filter + strlen(filter), sizeof(filter) - strlen(filter),
				 " AND database_name = '%s'", b->database_name);

	cg_hide_refusal = !cg_log_this_refusal(b->name);
	ereport(FATAL,
			(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
			 errmsg("connection budget \"%s\" exhausted", b->name),
			 errdetail_plural("Budget \"%s\" allows %d connection (%s); %u %s in use.%s%s",
							  "Budget \"%s\" allows %d connections (%s); %u %s in use.%s%s",
							  b->max_connections,
							  b->name, b->max_connections, filter, in_use,
							  in_use == 1 ? "is" : "are",
							  extra ? " " : "", extra ? extra : ""),
			 errhint("Close idle connections of this application, or raise conngov.budgets.max_connections for \"%s\".",
					 b->name)));
}

/*---- floors ----*/

/*
 * cg_floors_refuse: whether a login just charged to budget (or
 * CG_UNBUDGETED), in_use being the budget's total with it, leaves fewer
 * free normal slots than the unused floors of the enforce budgets.  A
 * login within its own budget's floor is never refused for floors.  The
 * order of the reads is the file header's.  When refused, fills *fr with
 * what the DETAIL names.  Caller holds the lock, shared; O(1) when no
 * floor is configured.
 */
static bool
cg_floors_refuse(int budget, uint32 in_use, CgFloorRefusal *fr)
{
	int			nreserved = CG_SUPERUSER_RESERVED() + CG_RESERVED_CONNECTIONS();
	uint32		unused;
	uint32		again;
	bool		enough;
	int			i;

	if (!cg_shared->has_floors)
		return false;
	if (budget >= 0 && !cg_budgets[budget].monitor &&
		in_use <= (uint32) cg_budgets[budget].min_connections)
		return false;

	/* free slots first, unused floors after (see the file header) */
	unused = pg_atomic_read_u32(&cg_shared->floors_unused);
	for (;;)
	{
		enough = cg_have_free_procs((int) unused + nreserved);
		pg_memory_barrier();
		again = pg_atomic_read_u32(&cg_shared->floors_unused);
		if (again <= unused)
			break;
		unused = again;
	}
	if (enough)
		return false;

	fr->nfree = Max(cg_free_procs() - nreserved, 0);
	fr->unused = unused;
	fr->n = 0;
	for (i = 0; i < Min(cg_shared->nfloors, CG_MAX_FLOOR_LIST); i++)
	{
		int			f = cg_shared->floor_list[i];
		uint32		u = cg_unused_floor(f);

		if (f == budget || u == 0)
			continue;
		if (fr->n < CG_FLOOR_NAMES)
		{
			strlcpy(fr->b[fr->n].name, cg_budgets[f].name, NAMEDATALEN);
			fr->b[fr->n].unused = u;
			fr->b[fr->n].min_connections = cg_budgets[f].min_connections;
		}
		fr->n++;
	}
	return true;
}

/*
 * cg_refuse_for_floors: the FATAL of a login refused for the others'
 * floors, with the SPEC's wording.
 */
static void
cg_refuse_for_floors(const char *budget_name, const CgFloorRefusal *fr)
{
	StringInfoData list;
	int			shown = Min(fr->n, CG_FLOOR_NAMES);
	int			i;

	initStringInfo(&list);
	for (i = 0; i < shown; i++)
	{
		if (i > 0)
			appendStringInfoString(&list,
								   (i == shown - 1 && fr->n <= shown) ? " and " : ", ");
		appendStringInfo(&list, "\"%s\" (%u unused of %d guaranteed)",
						 fr->b[i].name, fr->b[i].unused,
						 fr->b[i].min_connections);
	}
	if (fr->n > shown)
		appendStringInfo(&list, " and %d other budgets", fr->n - shown);

	cg_hide_refusal = !cg_log_this_refusal(budget_name);
	/* fr->n is 0 only past the CG_MAX_FLOOR_LIST floor budgets listed */
	ereport(FATAL,
			(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
			 errmsg("connection budget \"%s\": the free connection slots are guaranteed to other budgets",
					budget_name),
			 fr->n == 0 ?
			 errdetail("%d normal connection %s free; other budgets are guaranteed them.",
					   fr->nfree, fr->nfree == 1 ? "slot is" : "slots are") :
			 errdetail("%d normal connection %s free; %s %s %s guaranteed them.",
					   fr->nfree, fr->nfree == 1 ? "slot is" : "slots are",
					   fr->n == 1 ? "budget" : "budgets", list.data,
					   fr->n == 1 ? "is" : "are"),
			 errhint("Lower min_connections of those budgets or raise max_connections of the server.")));
}

/*
 * cg_wait_transient: a login within its budget's floor has its PGPROC, but
 * PostgreSQL's reserved-slot check (right after this hook) would refuse it
 * because logins being refused still hold theirs for a moment.  Wait for
 * them to leave, at most CG_TRANSIENT_WAIT_MS; no lock held.
 */
static void
cg_wait_transient(void)
{
	int			nreserved = CG_SUPERUSER_RESERVED() + CG_RESERVED_CONNECTIONS();
	int			waited = 0;

	while (nreserved > 0 && !cg_have_free_procs(nreserved) &&
		   waited < CG_TRANSIENT_WAIT_MS)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 5, cg_wait_event_login());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited += 5;
	}
}

/*---- waiting for a place (login_wait) ----*/

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
 * cg_join_queue: take a ticket for budget and count this login as
 * waiting.  Caller holds the lock, shared, and has checked max_waiting.
 */
static void
cg_join_queue(CgSession *s, int slot, int budget)
{
	CgCounters *c = cg_counters(budget);

	s->wait_slot = cg_budget_slot(budget);
	pg_write_barrier();
	pg_atomic_write_u64(&s->wait_ticket,
						pg_atomic_fetch_add_u64(&cg_shared->wait_ticket_next, 1));
	pg_atomic_fetch_add_u32(&c->waiting, 1);
	pg_atomic_fetch_add_u64(&c->waited, 1);
	cg_history_sessions(1, true);
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
	cg_history_sessions(-1, true);
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
static void
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
/*---- the login ----*/

typedef enum CgVerdict
{
	CG_ADMITTED,
	CG_REFUSED,					/* over the budget (after waiting, if it did) */
	CG_QUEUE_FULL,				/* over the budget, max_waiting already wait */
	CG_REFUSED_FLOORS,			/* the free slots are others' floors */
	CG_WAIT						/* queued: cg_wait_for_place() decides */
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
	char		budget_name[NAMEDATALEN];
	CgBudget	hit;			/* the budget's policy part */
	CgFloorRefusal fr;
} CgLogin;

/* Note the budget charged (or considered) for the messages. */
static void
cg_note_budget(CgLogin *l, int budget)
{
	l->budget = budget;
	if (budget == CG_UNBUDGETED)
	{
		memset(&l->hit, 0, sizeof(CgBudget));
		strlcpy(l->budget_name, CG_UNBUDGETED_NAME, NAMEDATALEN);
		return;
	}
	memcpy(&l->hit, &cg_budgets[budget], sizeof(CgBudget));
	strlcpy(l->budget_name, l->hit.name, NAMEDATALEN);
}

/*
 * cg_take_slot: the login is admitted, charged to budget: make the
 * session visible (identity first, pid last).  Lock held, shared.
 */
static void
cg_take_slot(CgSession *s, int slot, int budget)
{
	pg_atomic_fetch_add_u64(&cg_counters(budget)->admitted, 1);
	s->idle_noted_since = 0;
	s->idle_noted_ended = false;
	pg_atomic_write_u32(&s->charge, (uint32) cg_budget_slot(budget));
	pg_write_barrier();
	s->pid = MyProcPid;
	cg_my_slot = slot;
	cg_naming_open = true;		/* late naming (statements.c) */
}

/*
 * cg_after_charge_locked: the login is charged to l->budget; refuse it
 * for the others' floors (giving the charge back) or admit it.  Lock
 * held, shared.
 */
static CgVerdict
cg_after_charge_locked(CgSession *s, int slot, CgLogin *l)
{
	CgCounters *c = cg_counters(l->budget);

	if (!l->exempt && cg_mode != CG_MODE_OFF &&
		cg_floors_refuse(l->budget, l->in_use, &l->fr))
	{
		if (cg_mode == CG_MODE_ENFORCE && !l->hit.monitor)
		{
			if (cg_release_budget(l->budget))
				ConditionVariableBroadcast(&c->wait_cv);
			pg_atomic_fetch_add_u64(&c->refused_for_floors, 1);
			cg_note_refused(c);
			return CG_REFUSED_FLOORS;
		}
		l->would_refuse_floors = true;
		pg_atomic_fetch_add_u64(&c->would_refuse, 1);
	}
	cg_take_slot(s, slot, l->budget);
	return CG_ADMITTED;
}

/*
 * cg_decide_locked: charge the login to l->budget, or refuse it, or queue
 * it (login_wait).  Lock held, shared.
 */
static CgVerdict
cg_decide_locked(CgSession *s, int slot, CgLogin *l)
{
	CgBudget   *b;
	CgCounters *c = cg_counters(l->budget);
	bool		enforce;

	cg_note_budget(l, l->budget);
	if (l->budget == CG_UNBUDGETED)
	{
		(void) cg_charge_budget(l->budget, -1, &l->in_use);
		return cg_after_charge_locked(s, slot, l);
	}

	b = &cg_budgets[l->budget];
	enforce = (cg_mode == CG_MODE_ENFORCE && !b->monitor && !l->exempt);
	if (enforce && b->login_wait_ms > 0 && pg_atomic_read_u32(&c->waiting) > 0)
	{
		/* first come, first served: behind the logins already waiting */
	}
	else if (cg_charge_budget(l->budget, b->max_connections, &l->in_use))
		return cg_after_charge_locked(s, slot, l);
	else if (!enforce)
	{
		/* monitor, off or exempt: admitted over the budget */
		l->would_refuse = !l->exempt && cg_mode != CG_MODE_OFF;
		if (l->would_refuse)
			pg_atomic_fetch_add_u64(&c->would_refuse, 1);
		(void) cg_charge_budget(l->budget, -1, &l->in_use);
		return cg_after_charge_locked(s, slot, l);
	}
	else if (b->login_wait_ms == 0)
	{
		pg_atomic_fetch_add_u64(&c->refused, 1);
		cg_note_refused(c);
		return CG_REFUSED;
	}

	/* over the budget, or others wait: queue, unless max_waiting do */
	l->in_use = pg_atomic_read_u32(&c->total);
	l->waiting = pg_atomic_read_u32(&c->waiting);
	if (l->waiting >= (uint32) b->max_waiting)
	{
		pg_atomic_fetch_add_u64(&c->refused, 1);
		cg_note_refused(c);
		return CG_QUEUE_FULL;
	}
	cg_join_queue(s, slot, l->budget);
	return CG_WAIT;
}

/*
 * cg_wait_for_place: the login is queued (cg_join_queue); wait, holding
 * no lock, until it is the oldest waiter of its budget and a place is
 * free, or until login_wait has passed (CG_REFUSED), whichever comes
 * first.  A publish may move the waiter to another budget (or none:
 * admitted unbudgeted).  Ends the backend when the client went away.
 */
static CgVerdict
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
				cg_note_refused(&cg_slots[wake].c);
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

/* The client's numeric IP address for an event, "" for a unix socket. */
static void
cg_client_addr(Port *port, char *addr, size_t len)
{
	addr[0] = '\0';
	if (port != NULL &&
		(port->raddr.addr.ss_family == AF_INET ||
		 port->raddr.addr.ss_family == AF_INET6) &&
		pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen,
						   addr, len, NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		addr[strcspn(addr, "%")] = '\0';
	else
		addr[0] = '\0';
}

/*
 * cg_login_event: the event of a login that was not simply admitted.
 */
static void
cg_login_event(Port *port, const CgSession *s, const CgLogin *l, CgVerdict v)
{
	char		detail[128];
	char		addr[NI_MAXHOST];
	CgEventKind kind;

	switch (v)
	{
		case CG_REFUSED:
			kind = l->waited ? CG_EVENT_WAIT_TIMEOUT : CG_EVENT_REFUSED;
			if (l->waited)
				snprintf(detail, sizeof(detail), "waited %.1f s; %u in use, limit %d",
						 l->waited_s, l->in_use, l->hit.max_connections);
			else
				snprintf(detail, sizeof(detail), "%u in use, limit %d",
						 l->in_use, l->hit.max_connections);
			break;
		case CG_QUEUE_FULL:
			kind = CG_EVENT_REFUSED;
			snprintf(detail, sizeof(detail), "%u in use, limit %d; %u waiting, max_waiting %d",
					 l->in_use, l->hit.max_connections, l->waiting,
					 l->hit.max_waiting);
			break;
		case CG_REFUSED_FLOORS:
			kind = CG_EVENT_REFUSED_FOR_FLOORS;
			snprintf(detail, sizeof(detail), "%d normal slots free, %u guaranteed to other budgets",
					 l->fr.nfree, l->fr.unused);
			break;
		default:
			if (l->would_refuse_floors)
			{
				kind = CG_EVENT_WOULD_REFUSE_FOR_FLOORS;
				snprintf(detail, sizeof(detail), "%d normal slots free, %u guaranteed to other budgets",
						 l->fr.nfree, l->fr.unused);
			}
			else if (l->would_refuse)
			{
				kind = CG_EVENT_WOULD_REFUSE;
				snprintf(detail, sizeof(detail), "%u in use, limit %d",
						 l->in_use, l->hit.max_connections);
			}
			else if (l->waited)
			{
				kind = CG_EVENT_WAITED;
				snprintf(detail, sizeof(detail), "admitted after waiting %.1f s",
						 l->waited_s);
			}
			else
				return;
			break;
	}

	cg_client_addr(port, addr, sizeof(addr));

	cg_add_event(kind, l->budget_name, MyProcPid, s->role_name,
				 s->database_name, s->application_name, addr, detail);
}

/*
 * cg_ClientAuthentication: chain the previous hook, then match and charge
 * (or refuse, or wait).
 */
static void
cg_ClientAuthentication(Port *port, int status)
{
	CgSession  *s;
	int			slot;
	bool		unloaded;
	CgLogin		l;
	CgVerdict	v;

	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);

	if (status != STATUS_OK || cg_shared == NULL || am_walsender)
		return;

	slot = CG_MY_PROCNO();
	if (slot < 0 || slot >= cg_nsessions)
		return;

	memset(&l, 0, sizeof(l));
	l.exempt = cg_is_exempt(port->user_name);

	if (!cg_exit_registered)
	{
		before_shmem_exit(cg_release, (Datum) 0);
		cg_exit_registered = true;
	}

	/* The identity is private until pid is set. */
	s = &cg_sessions[slot];
	strlcpy(s->application_name,
			port->application_name ? port->application_name : "",
			NAMEDATALEN);
	strlcpy(s->role_name, port->user_name, NAMEDATALEN);
	strlcpy(s->database_name, port->database_name, NAMEDATALEN);
	s->exempt = l.exempt;
	s->listening = false;
	s->end_pid = 0;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	unloaded = (cg_shared->state == CG_STATE_UNLOADED);
	l.budget = unloaded ? CG_UNBUDGETED :
		cg_match_budget(s->application_name, s->role_name, s->database_name);
	v = cg_decide_locked(s, slot, &l);
	LWLockRelease(cg_shared->lock);

	if (unloaded)
		ereport(LOG,
				(errmsg("conngov: budgets are not loaded yet, login of role \"%s\" admitted without a budget check",
						port->user_name)));

	if (v == CG_WAIT)
	{
		l.waited = true;
		v = cg_wait_for_place(s, slot, &l);
	}

	cg_login_event(port, s, &l, v);

	switch (v)
	{
		case CG_REFUSED:
			cg_refuse(&l.hit, l.in_use,
					  l.waited ? psprintf("The login waited %.1f s for a place.",
										  l.waited_s) : NULL);
			break;
		case CG_QUEUE_FULL:
			cg_refuse(&l.hit, l.in_use,
					  psprintf("%u %s for a place already, the budget's max_waiting.",
							   l.waiting, l.waiting == 1 ? "login waits" : "logins wait"));
			break;
		case CG_REFUSED_FLOORS:
			cg_refuse_for_floors(l.budget_name, &l.fr);
			break;
		case CG_ADMITTED:
		case CG_WAIT:
			/* within its floor: do not lose to logins being refused */
			if (l.budget >= 0 && !l.hit.monitor &&
				l.in_use <= (uint32) l.hit.min_connections)
				cg_wait_transient();
			break;
	}
}

/*
 * cg_my_session: this backend's session slot while it is charged, else
 * NULL.
 */
CgSession *
cg_my_session(void)
{
	if (cg_my_slot < 0 || cg_shared == NULL)
		return NULL;
	return &cg_sessions[cg_my_slot];
}

/*
 * cg_report_late_refusal: the event of a late name refused (or admitted
 * over its budget), then the FATAL when it was refused.  As at login.
 */
static void
cg_report_late_refusal(const CgSession *s, const char *name,
					   const CgBudget *hit, uint32 in_use, bool refused)
{
	char		detail[128];
	char		addr[NI_MAXHOST];
	Port	   *port = MyProcPort;

	cg_client_addr(port, addr, sizeof(addr));

	snprintf(detail, sizeof(detail), "%u in use, limit %d",
			 in_use, hit->max_connections);
	cg_add_event(refused ? CG_EVENT_REFUSED : CG_EVENT_WOULD_REFUSE,
				 hit->name, MyProcPid, s->role_name, s->database_name,
				 name, addr, detail);
	if (refused)
		cg_refuse(hit, in_use, NULL);
}

/*
 * cg_recharge_if_renamed: late naming.  Called by statements.c at the end
 * of each statement until the first one that is not a SET: when the
 * session's application_name is no longer the one it is charged by, charge
 * it to the budget the new name matches (first, below that budget's limit,
 * as at login; floors do not apply, the session holds its process slot
 * already, and neither does login_wait), then give the old charge back
 * with a compare-and-swap (a publish may be moving it); when the new
 * budget has no place, end the session with the login's refusal.
 * Afterwards, naming is closed by the caller and later names change
 * nothing.
 */
void
cg_recharge_if_renamed(void)
{
	CgSession  *s = cg_my_session();
	char		name[NAMEDATALEN];
	int			budget;
	int			old;
	int			to;
	int			wake = CG_NOT_CHARGED;
	bool		refused = false;
	bool		would_refuse = false;
	bool		refused_floors = false;
	uint32		in_use = 0;
	CgBudget	hit;
	CgFloorRefusal fr;

	if (s == NULL)
		return;
	strlcpy(name, application_name ? application_name : "", NAMEDATALEN);
	if (strcmp(name, s->application_name) == 0)
		return;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	old = cg_session_charge(s);
	if (s->pid != MyProcPid || old == CG_NOT_CHARGED)
	{
		LWLockRelease(cg_shared->lock);
		return;
	}
	budget = cg_shared->state == CG_STATE_UNLOADED ? CG_UNBUDGETED :
		cg_match_budget(name, s->role_name, s->database_name);
	to = cg_budget_slot(budget);
	if (to != old)
	{
		CgCounters *c = cg_slot_counters(to);

		if (!cg_charge_slot(to, budget >= 0 ?
							cg_budgets[budget].max_connections : -1, &in_use))
		{
			CgBudget   *b = &cg_budgets[budget];

			memcpy(&hit, b, sizeof(CgBudget));
			if (cg_mode == CG_MODE_ENFORCE && !b->monitor && !s->exempt)
			{
				refused = true;
				pg_atomic_fetch_add_u64(&c->refused, 1);
				cg_note_refused(c);
			}
			else
			{
				/* monitor, off or exempt: charged over the budget */
				would_refuse = !s->exempt && cg_mode != CG_MODE_OFF;
				if (would_refuse)
					pg_atomic_fetch_add_u64(&c->would_refuse, 1);
				(void) cg_charge_slot(to, -1, &in_use);
			}
		}
		if (!refused)
		{
			/* leaving a floor budget within its floor frees a guaranteed slot */
			bool		within_floor = cg_slot_within_floor(old);

			pg_atomic_fetch_add_u64(&c->admitted, 1);

			/*
			 * The new name first: a publisher that reads it with the old
			 * charge moves the session to "to" itself, and the swap below
			 * then finds it there.
			 */
			cg_session_set_name(s, name);
			/* swap the charge; a publish may have moved it meanwhile */
			for (;;)
			{
				uint32		expected = (uint32) old;

				if (pg_atomic_compare_exchange_u32(&s->charge, &expected,
												   (uint32) to))
				{
					if (cg_release_slot(old))
						wake = old;
					break;
				}
				old = (int32) expected;
				if (old == to)
				{
					/* a publish moved it there already: one charge too many */
					(void) cg_release_slot(to);
					break;
				}
			}

			/*
			 * As a login: a session that gave up a slot guaranteed to its old
			 * budget may not keep it for a budget outside its own floor when
			 * the other budgets' floors need it.
			 */
			if (within_floor && !s->exempt && cg_mode != CG_MODE_OFF &&
				cg_floors_refuse(budget, in_use, &fr))
			{
				if (cg_mode == CG_MODE_ENFORCE &&
					(budget < 0 || !cg_budgets[budget].monitor))
				{
					refused_floors = true;
					pg_atomic_fetch_add_u64(&c->refused_for_floors, 1);
					cg_note_refused(c);
				}
				else
					pg_atomic_fetch_add_u64(&c->would_refuse, 1);
			}
		}
	}
	/* the slot's name is the one it is charged by (publish re-matches it) */
	else
		cg_session_set_name(s, name);
	if (wake >= 0)
		ConditionVariableBroadcast(&cg_slots[wake].c.wait_cv);
	LWLockRelease(cg_shared->lock);

	if (would_refuse || refused)
		cg_report_late_refusal(s, name, &hit, in_use, refused);
	if (refused_floors)
	{
		char		detail[128];
		const char *bname = budget >= 0 ? cg_slots[to].name : CG_UNBUDGETED_NAME;

		snprintf(detail, sizeof(detail), "%d normal slots free, %u guaranteed to other budgets",
				 fr.nfree, fr.unused);
		cg_add_event(CG_EVENT_REFUSED_FOR_FLOORS, bname, MyProcPid,
					 s->role_name, s->database_name, name, NULL, detail);
		cg_refuse_for_floors(bname, &fr);
	}
}

/*
 * cg_recheck_exempt: conngov.exempt_roles (and superuser, and
 * pg_use_reserved_connections) applied to the sessions already open.
 * Called by the loader, in a transaction, after a SIGHUP and on every
 * load.  The roles are looked up without the lock; a slot reused meanwhile
 * (another pid) is left to its own login.
 */
void
cg_recheck_exempt(void)
{
	struct
	{
		int			slot;
		int			pid;
		char		role_name[NAMEDATALEN];
		bool		exempt;
	}		   *v;
	int			n = 0;
	int			i;

	v = palloc(sizeof(*v) * cg_nsessions);
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nsessions; i++)
	{
		const CgSession *s = &cg_sessions[i];
		int			pid = s->pid;

		pg_read_barrier();
		if (pid == 0)
			continue;
		v[n].slot = i;
		v[n].pid = pid;
		strlcpy(v[n].role_name, s->role_name, NAMEDATALEN);
		n++;
	}
	LWLockRelease(cg_shared->lock);

	for (i = 0; i < n; i++)
		v[i].exempt = cg_is_exempt(v[i].role_name);

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < n; i++)
	{
		CgSession  *s = &cg_sessions[v[i].slot];

		if (s->pid == v[i].pid)
			s->exempt = v[i].exempt;
	}
	LWLockRelease(cg_shared->lock);
	pfree(v);
}

/*
 * cg_describe_ending: the FATAL of this session's idle ending.  The worker
 * (or sweep()) marks the session slot before its SIGTERM; PostgreSQL then
 * reports "terminating connection due to administrator command" (57P01).
 * Only when the mark names this backend is the message rewritten, so a
 * person's pg_terminate_backend keeps PostgreSQL's own.  The prefix
 * "terminating connection" stays: drivers match it to detect a lost
 * connection.
 */
static void
cg_describe_ending(ErrorData *edata)
{
	CgSession  *s = cg_my_session();
	const char *kind;
	char		budget[NAMEDATALEN];
	char		timeout[32];
	bool		in_xact;
	bool		timeout_code;
	int64		idle_ms;
	int64		timeout_ms;

	if (s == NULL || s->end_pid != MyProcPid)
		return;
	pg_read_barrier();
	in_xact = s->end_in_xact;
	timeout_code = s->end_timeout_code;
	idle_ms = s->end_idle_ms;
	timeout_ms = s->end_timeout_ms;
	strlcpy(budget, s->end_budget, NAMEDATALEN);

	/* "3 s", "2.5 s", "0.001 s": the timeout as the budget says it */
	snprintf(timeout, sizeof(timeout), "%.3f", timeout_ms / 1000.0);
	while (timeout[strlen(timeout) - 1] == '0')
		timeout[strlen(timeout) - 1] = '\0';
	if (timeout[strlen(timeout) - 1] == '.')
		timeout[strlen(timeout) - 1] = '\0';

	kind = in_xact ? "idle in transaction" : "idle";
	edata->message = psprintf("terminating connection due to %s timeout of connection budget \"%s\"",
							  kind, budget);
	edata->detail = psprintf("The session was %s for %.1f s; the budget's %s is %s s.",
							 kind, idle_ms / 1000.0,
							 in_xact ? "idle_in_transaction_timeout" : "idle_timeout",
							 timeout);
	/* the ender's setting: an idle session reads the config file late */
	if (timeout_code)
		edata->sqlerrcode = in_xact ?
			ERRCODE_IDLE_IN_TRANSACTION_SESSION_TIMEOUT :
			ERRCODE_IDLE_SESSION_TIMEOUT;
}

/*
 * cg_emit_log: hides a refusal's FATAL from the server log as
 * conngov.log_refusals says (the client still gets it), and makes an idle
 * ending's FATAL say why (cg_describe_ending).
 */
static void
cg_emit_log(ErrorData *edata)
{
	if (edata->elevel == FATAL)
	{
		if (cg_hide_refusal)
			edata->output_to_server = false;
		else if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			cg_describe_ending(edata);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
cg_auth_init(void)
{
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = cg_ClientAuthentication;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = cg_emit_log;
}
