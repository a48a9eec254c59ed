/*-------------------------------------------------------------------------
 *
 * auth.c
 *		The login check: match a new connection to a budget, charge it or
 *		refuse it (or queue it), and release the charge however the session
 *		ends.
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
 * The login's name is the startup packet's application_name, else its
 * options' -c application_name (cg_login_name): final, naming closed.  A
 * login with neither is charged by the empty name and re-charged before
 * its first statements run (naming.c, statements.c).
 *
 * The rest of the login path lives in one file per job: floors.c (the
 * others' guaranteed slots), waitq.c (waiting for a place, login_wait,
 * and the room a wait needs), naming.c (names after login), refusal.c
 * (what a refused or ended client reads, and what the server log keeps).
 * The loader re-applies conngov.exempt_roles to open sessions
 * (cg_recheck_exempt).
 *
 * Lock rules: cg_shared->lock, shared, from the match to the charge (or
 * the queueing) and in the exit release; never across a wait, a catalog
 * read or a message.  Counters are atomics; the session slot's identity is
 * private to its owner until pid is set (write barrier first).
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
#include <math.h>
#include <netdb.h>

#include "common/ip.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;

/* This backend's slot in cg_sessions while charged, else -1. */
static int	cg_my_slot = -1;
static bool cg_exit_registered = false;

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
	cg_waitq_exit();
	cg_rate_exit();
	if (cg_my_slot < 0)
		return;

	s = &cg_sessions[cg_my_slot];
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (s->pid == MyProcPid)
	{
		/* taken atomically: a publisher may be moving it right now */
		int			charge = (int32) pg_atomic_exchange_u32(&s->charge,
															(uint32) CG_NOT_CHARGED);

		/* a place freed: the oldest waiter, and only it, may take it */
		if (charge != CG_NOT_CHARGED && cg_release_slot(charge))
			wake = charge;
	}
	s->pid = 0;
	cg_wake_queue(wake);
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

/*---- the login ----*/

/* Note the budget charged (or considered) for the messages. */
void
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
cg_take_slot(CgSession *s, int slot, const CgLogin *l)
{
	int			budget = l->budget;

	pg_atomic_fetch_add_u64(&cg_counters(budget)->admitted, 1);
	s->idle_noted_since = 0;
	s->idle_noted_ended = false;
	pg_atomic_write_u32(&s->charge, (uint32) cg_budget_slot(budget));
	pg_write_barrier();
	s->pid = MyProcPid;
	cg_my_slot = slot;
	/* a login that came with a name has it for good (statements.c) */
	cg_naming_open = l->unnamed;
	cg_naming_first = l->unnamed;
}

/*
 * cg_after_charge_locked: the login is charged to l->budget; refuse it
 * for the others' floors or for the budget's login rate (giving the
 * charge back), or have it wait for its token (CG_PACE, the charge given
 * back too), or admit it.  The rate comes last, so that a login refused
 * for the limit or the floors uses no token (ratelimit.c).  Lock held,
 * shared.
 */
CgVerdict
cg_after_charge_locked(CgSession *s, int slot, CgLogin *l)
{
	CgCounters *c = cg_counters(l->budget);
	CgVerdict	v;

	if (!l->exempt && cg_mode != CG_MODE_OFF &&
		cg_floors_refuse(l->budget, l->in_use, &l->fr))
	{
		if (cg_mode == CG_MODE_ENFORCE && !l->hit.monitor)
		{
			if (cg_release_budget(l->budget))
				cg_wake_queue(cg_budget_slot(l->budget));
			pg_atomic_fetch_add_u64(&c->refused_for_floors, 1);
			cg_note_refused(c);
			return CG_REFUSED_FLOORS;
		}
		l->would_refuse_floors = true;
		pg_atomic_fetch_add_u64(&c->would_refuse, 1);
	}
	v = cg_rate_check_locked(l);
	if (v != CG_ADMITTED)
	{
		/* no place kept while refused or pacing: the oldest waiter's */
		if (cg_release_budget(l->budget))
			cg_wake_queue(cg_budget_slot(l->budget));
		return v;
	}
	cg_take_slot(s, slot, l);
	return CG_ADMITTED;
}

/*
 * cg_charge_login_locked: charge session slot "slot" (s) to l->budget
 * (noted in l), or refuse it, or queue it (login_wait: behind the logins
 * already waiting, first come first served).  Returns CG_ADMITTED when
 * charged (the caller then checks the floors), CG_WAIT when queued, or a
 * refusal, counted.  Serves logins and late naming (naming.c), whose name
 * to wait under is in s->wait_name.  Lock held, shared.
 */
CgVerdict
cg_charge_login_locked(CgSession *s, int slot, CgLogin *l)
{
	CgBudget   *b;
	CgCounters *c = cg_counters(l->budget);
	bool		enforce;

	cg_note_budget(l, l->budget);
	if (l->budget == CG_UNBUDGETED)
	{
		(void) cg_charge_budget(l->budget, -1, &l->in_use);
		return CG_ADMITTED;
	}

	b = &cg_budgets[l->budget];
	enforce = (cg_mode == CG_MODE_ENFORCE && !b->monitor && !l->exempt);
	if (enforce && b->login_wait_ms > 0)
		return cg_charge_or_queue(s, slot, l, b->max_connections,
								  b->max_waiting);
	if (cg_charge_budget(l->budget, b->max_connections, &l->in_use))
		return CG_ADMITTED;
	if (!enforce)
	{
		/* monitor, off or exempt: admitted over the budget */
		l->would_refuse = !l->exempt && cg_mode != CG_MODE_OFF;
		if (l->would_refuse)
			pg_atomic_fetch_add_u64(&c->would_refuse, 1);
		(void) cg_charge_budget(l->budget, -1, &l->in_use);
		return CG_ADMITTED;
	}
	pg_atomic_fetch_add_u64(&c->refused, 1);
	cg_note_refused(c);
	return CG_REFUSED;
}

/* The client's numeric IP address for an event, "" for a unix socket. */
void
cg_port_addr(Port *port, char *addr, size_t len)
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
 * cg_login_event: the event of a login (or a late name) that was not
 * simply admitted; application_name is the name it was judged by.
 */
void
cg_login_event(const CgSession *s, const char *application_name,
			   const CgLogin *l, CgVerdict v)
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
		case CG_NO_ROOM:
			kind = CG_EVENT_REFUSED;
			snprintf(detail, sizeof(detail), "%u in use, limit %d; no room to wait: %d slots free, %d kept",
					 l->in_use, l->hit.max_connections, l->room_free,
					 l->room_needed);
			break;
		case CG_REFUSED_RATE:
			kind = CG_EVENT_REFUSED_RATE;
			snprintf(detail, sizeof(detail), "login_rate %g, burst %d; next token in %.0f ms%s",
					 l->hit.login_rate, l->hit.login_burst,
					 ceil(l->retry_ns / 1e6),
					 l->room_needed > 0 ? "; no room to wait" : "");
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
			else if (l->would_refuse_rate)
			{
				kind = CG_EVENT_WOULD_REFUSE_RATE;
				snprintf(detail, sizeof(detail), "login_rate %g, burst %d; next token in %.0f ms",
						 l->hit.login_rate, l->hit.login_burst,
						 ceil(l->retry_ns / 1e6));
			}
			else if (l->waited)
			{
				kind = CG_EVENT_WAITED;
				snprintf(detail, sizeof(detail), "admitted after waiting %.1f s",
						 l->waited_s);
			}
			else if (l->paced)
			{
				kind = CG_EVENT_PACED;
				snprintf(detail, sizeof(detail), "admitted after waiting %.3f s for its token (login_rate %g)",
						 l->pace_ns / 1e9, l->hit.login_rate);
			}
			else
				return;
			break;
	}

	cg_port_addr(MyProcPort, addr, sizeof(addr));

	cg_add_event(kind, l->budget_name, MyProcPid, s->role_name,
				 s->database_name, application_name, addr, detail);
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
	char	   *name;

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

	/* the login's name, from the packet or its options (naming.c) */
	name = cg_login_name(port);
	l.unnamed = (name == NULL || name[0] == '\0');

	/* The identity is private until pid is set. */
	s = &cg_sessions[slot];
	strlcpy(s->application_name, l.unnamed ? "" : name, NAMEDATALEN);
	strlcpy(s->wait_name, s->application_name, NAMEDATALEN);
	strlcpy(s->role_name, port->user_name, NAMEDATALEN);
	strlcpy(s->database_name, port->database_name, NAMEDATALEN);
	s->exempt = l.exempt;
	s->listening = false;
	s->end_pid = 0;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	unloaded = (cg_shared->state == CG_STATE_UNLOADED);
	l.budget = unloaded ? CG_UNBUDGETED :
		cg_match_budget(s->application_name, s->role_name, s->database_name);
	v = cg_charge_login_locked(s, slot, &l);
	if (v == CG_ADMITTED)
		v = cg_after_charge_locked(s, slot, &l);
	LWLockRelease(cg_shared->lock);

	if (unloaded)
		ereport(LOG,
				(errmsg("conngov: budgets are not loaded yet, login of role \"%s\" admitted without a budget check",
						port->user_name)));

	for (;;)
	{
		if (v == CG_WAIT)
		{
			l.waited = true;
			v = cg_wait_for_place(s, slot, &l);
			if (v == CG_ADMITTED)
			{
				/* charged, and still under the lock */
				v = cg_after_charge_locked(s, slot, &l);
				LWLockRelease(cg_shared->lock);
			}
		}
		if (v != CG_PACE)
			break;

		/* its token is reserved: wait for it, then log in with it */
		l.paced = true;
		v = cg_pace(&l);
		if (v != CG_ADMITTED)
			break;
		LWLockAcquire(cg_shared->lock, LW_SHARED);
		l.budget = cg_match_budget(s->application_name, s->role_name,
								   s->database_name);
		v = cg_charge_login_locked(s, slot, &l);
		if (v == CG_ADMITTED)
			v = cg_after_charge_locked(s, slot, &l);
		LWLockRelease(cg_shared->lock);

		/*
		 * Its token is due, but it waits for a place: a token kept while
		 * queued would let logins paced apart be admitted together once
		 * places free together.  Given back (when nobody reserved one after
		 * it), it is rated again once it has a place.
		 */
		if (v == CG_WAIT)
			cg_rate_refund(&l);
	}
	/* refused for the limit or the floors after pacing: no token used */
	if (v != CG_ADMITTED)
		cg_rate_refund(&l);

	cg_login_event(s, s->application_name, &l, v);

	if (v == CG_ADMITTED)
	{
		/* within its floor: do not lose to logins being refused */
		if (l.budget >= 0 && !l.hit.monitor &&
			l.in_use <= (uint32) l.hit.min_connections)
			cg_wait_transient();
	}
	else
		cg_refuse_login(&l, v);
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

void
cg_auth_init(void)
{
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = cg_ClientAuthentication;
	cg_refusal_init();
}
