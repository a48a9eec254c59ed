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

#include "common/ip.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/elog.h"

#include "compat.h"
#include "conngov.h"

static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* This backend's slot in cg_sessions while charged, else -1. */
static int	cg_my_slot = -1;
static bool cg_exit_registered = false;
/* Set just before a refusal when conngov.log_refusals is off. */
static bool cg_hide_refusal = false;

/*
 * cg_release: before_shmem_exit callback giving the charge back.  Runs on
 * every exit path of a backend that got past cg_ClientAuthentication,
 * including FATAL errors later in startup.
 */
static void
cg_release(int code, Datum arg)
{
	CgSession  *s;

	if (cg_my_slot < 0 || cg_shared == NULL)
		return;

	s = &cg_sessions[cg_my_slot];
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (s->pid == MyProcPid)
	{
		/* taken atomically: a publisher may be moving it right now */
		int			charge = (int32) pg_atomic_exchange_u32(&s->charge,
															(uint32) CG_NOT_CHARGED);

		if (charge != CG_NOT_CHARGED)
			pg_atomic_fetch_sub_u32(&cg_slot_counters(charge)->total, 1);
	}
	s->pid = 0;
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
 * cg_refuse: the FATAL of a refused login, with the SPEC's wording.  The
 * message is the one server log line unless conngov.log_refusals is off.
 */
static void
cg_refuse(const CgBudget *b, uint32 in_use)
{
	char		filter[3 * NAMEDATALEN + 64];

	snprintf(filter, sizeof(filter), "application_name LIKE '%s'", b->pattern);
	if (b->role_name[0] != '\0')
		snprintf(filter + strlen(filter), sizeof(filter) - strlen(filter),
				 " AND role_name = '%s'", b->role_name);
	if (b->database_name[0] != '\0')
		snprintf(filter + strlen(filter), sizeof(filter) - strlen(filter),
				 " AND database_name = '%s'", b->database_name);

	cg_hide_refusal = !cg_log_refusals;
	ereport(FATAL,
			(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
			 errmsg("connection budget \"%s\" exhausted", b->name),
			 errdetail_plural("Budget \"%s\" allows %d connection (%s); %u %s in use.",
							  "Budget \"%s\" allows %d connections (%s); %u %s in use.",
							  b->max_connections,
							  b->name, b->max_connections, filter, in_use,
							  in_use == 1 ? "is" : "are"),
			 errhint("Close idle connections of this application, or raise conngov.budgets.max_connections for \"%s\".",
					 b->name)));
}

/*
 * cg_ClientAuthentication: chain the previous hook, then match and charge.
 */
static void
cg_ClientAuthentication(Port *port, int status)
{
	CgSession  *s;
	int			slot;
	int			budget;
	bool		exempt;
	bool		unloaded;
	bool		refused = false;
	bool		would_refuse = false;
	uint32		in_use = 0;
	CgBudget	hit;

	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);

	if (status != STATUS_OK || cg_shared == NULL || am_walsender)
		return;

	slot = CG_MY_PROCNO();
	if (slot < 0 || slot >= cg_nsessions)
		return;

	exempt = cg_is_exempt(port->user_name);

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
	s->exempt = exempt;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	unloaded = (cg_shared->state == CG_STATE_UNLOADED);
	budget = unloaded ? CG_UNBUDGETED :
		cg_match_budget(s->application_name, s->role_name, s->database_name);

	if (budget == CG_UNBUDGETED)
		(void) cg_charge(cg_counters(budget), -1, &in_use);
	else
	{
		CgBudget   *b = &cg_budgets[budget];
		CgCounters *c = cg_counters(budget);

		if (!cg_charge(c, b->max_connections, &in_use))
		{
			if (cg_mode == CG_MODE_ENFORCE && !b->monitor && !exempt)
			{
				refused = true;
				pg_atomic_fetch_add_u64(&c->refused, 1);
				pg_atomic_write_u64(&c->last_refused_at,
									(uint64) GetCurrentTimestamp());
			}
			else
			{
				/* monitor, off or exempt: admitted over the budget */
				would_refuse = !exempt && cg_mode != CG_MODE_OFF;
				if (would_refuse)
					pg_atomic_fetch_add_u64(&c->would_refuse, 1);
				(void) cg_charge(c, -1, &in_use);
			}
			/* the events and the message need it after the lock is gone */
			memcpy(&hit, b, sizeof(CgBudget));
		}
	}

	if (!refused)
	{
		pg_atomic_fetch_add_u64(&cg_counters(budget)->admitted, 1);
		s->idle_noted_since = 0;
		s->idle_noted_ended = false;
		pg_atomic_write_u32(&s->charge, (uint32) (budget == CG_UNBUDGETED ?
												  CG_UNBUDGETED :
												  cg_budgets[budget].slot));
		pg_write_barrier();
		s->pid = MyProcPid;
		cg_my_slot = slot;
	}
	LWLockRelease(cg_shared->lock);

	if (unloaded)
		ereport(LOG,
				(errmsg("conngov: budgets are not loaded yet, login of role \"%s\" admitted without a budget check",
						port->user_name)));

	if (would_refuse || refused)
	{
		char		detail[128];
		char		addr[NI_MAXHOST];

		addr[0] = '\0';
		if ((port->raddr.addr.ss_family == AF_INET ||
			 port->raddr.addr.ss_family == AF_INET6) &&
			pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen,
							   addr, sizeof(addr), NULL, 0,
							   NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			addr[strcspn(addr, "%")] = '\0';
		else
			addr[0] = '\0';

		snprintf(detail, sizeof(detail), "%u in use, limit %d",
				 in_use, hit.max_connections);
		cg_add_event(refused ? CG_EVENT_REFUSED : CG_EVENT_WOULD_REFUSE,
					 hit.name, MyProcPid, s->role_name, s->database_name,
					 s->application_name, addr, detail);
	}

	if (refused)
		cg_refuse(&hit, in_use);
}

/*
 * cg_emit_log: hides the refusal's FATAL from the server log when
 * conngov.log_refusals is off; the client still gets it.
 */
static void
cg_emit_log(ErrorData *edata)
{
	if (cg_hide_refusal && edata->elevel == FATAL)
		edata->output_to_server = false;
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
