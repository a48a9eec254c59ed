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
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* This backend's slot in cg_sessions while charged, else -1. */
static int	cg_my_slot = -1;
static bool cg_exit_registered = false;
/* Set just before a refusal that conngov.log_refusals keeps from the log. */
static bool cg_hide_refusal = false;

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

	if (cg_my_slot < 0 || cg_shared == NULL)
		return;

	s = &cg_sessions[cg_my_slot];
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (s->pid == MyProcPid && s->budget != CG_NOT_CHARGED)
		pg_atomic_fetch_sub_u32(&cg_counters(s->budget)->total, 1);
	s->pid = 0;
	s->budget = CG_NOT_CHARGED;
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
 * SPEC's wording.  The message text is an API: libpq clients cannot see
 * the SQLSTATE of a refused login and match on it.  It is the one server
 * log line, as conngov.log_refusals says.
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

	cg_hide_refusal = !cg_log_this_refusal(b->name);
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
 * cg_charge_to: charge one session to budget (an index, or CG_UNBUDGETED),
 * below its limit unless the session may go over it (monitor budget or
 * mode, mode off, exempt role).  Returns false, charging nothing and
 * counting the refusal, when it is refused.  When the budget was at its
 * limit, *hit gets its policy (for the event and the message) and
 * *would_refuse says whether that counts as a would_refuse.  Caller holds
 * cg_shared->lock, shared.  Shared by the login and late naming.
 */
static bool
cg_charge_to(int budget, bool exempt, CgBudget *hit, uint32 *in_use,
			 bool *would_refuse)
{
	CgBudget   *b;
	CgCounters *c = cg_counters(budget);

	*would_refuse = false;
	if (budget == CG_UNBUDGETED)
	{
		(void) cg_charge(c, -1, in_use);
		return true;
	}
	b = &cg_budgets[budget];
	if (cg_charge(c, b->max_connections, in_use))
		return true;

	/* the events and the message need it after the lock is gone */
	memcpy(hit, b, offsetof(CgBudget, c));
	if (cg_mode == CG_MODE_ENFORCE && !b->monitor && !exempt)
	{
		pg_atomic_fetch_add_u64(&c->refused, 1);
		pg_atomic_write_u64(&c->last_refused_at,
							(uint64) GetCurrentTimestamp());
		return false;
	}
	/* monitor, off or exempt: admitted over the budget */
	*would_refuse = !exempt && cg_mode != CG_MODE_OFF;
	if (*would_refuse)
		pg_atomic_fetch_add_u64(&c->would_refuse, 1);
	(void) cg_charge(c, -1, in_use);
	return true;
}

/*
 * cg_report_refusal: the event of a refused (or would-be refused) charge of
 * this session, then the FATAL when it was refused.
 */
static void
cg_report_refusal(const CgSession *s, const CgBudget *hit, uint32 in_use,
				  bool refused)
{
	char		detail[128];
	char		addr[NI_MAXHOST];
	Port	   *port = MyProcPort;

	addr[0] = '\0';
	if (port != NULL &&
		(port->raddr.addr.ss_family == AF_INET ||
		 port->raddr.addr.ss_family == AF_INET6) &&
		pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen,
						   addr, sizeof(addr), NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		addr[strcspn(addr, "%")] = '\0';
	else
		addr[0] = '\0';

	snprintf(detail, sizeof(detail), "%u in use, limit %d",
			 in_use, hit->max_connections);
	cg_add_event(refused ? CG_EVENT_REFUSED : CG_EVENT_WOULD_REFUSE,
				 hit->name, MyProcPid, s->role_name, s->database_name,
				 s->application_name, addr, detail);
	if (refused)
		cg_refuse(hit, in_use);
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
	bool		refused;
	bool		would_refuse;
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

	/* read-your-writes: a committed change to the budgets is published */
	cg_await_publish();

	/* The identity is private until pid is set. */
	s = &cg_sessions[slot];
	strlcpy(s->application_name,
			port->application_name ? port->application_name : "",
			NAMEDATALEN);
	strlcpy(s->role_name, port->user_name, NAMEDATALEN);
	strlcpy(s->database_name, port->database_name, NAMEDATALEN);
	s->exempt = exempt;
	s->listening = false;
	s->end_pid = 0;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	unloaded = (cg_shared->state == CG_STATE_UNLOADED);
	budget = unloaded ? CG_UNBUDGETED :
		cg_match_budget(s->application_name, s->role_name, s->database_name);
	refused = !cg_charge_to(budget, exempt, &hit, &in_use, &would_refuse);
	if (!refused)
	{
		pg_atomic_fetch_add_u64(&cg_counters(budget)->admitted, 1);
		s->idle_noted_since = 0;
		s->idle_noted_ended = false;
		s->budget = budget;
		pg_write_barrier();
		s->pid = MyProcPid;
		cg_my_slot = slot;
		cg_naming_open = true;
	}
	LWLockRelease(cg_shared->lock);

	if (unloaded)
		ereport(LOG,
				(errmsg("conngov: budgets are not loaded yet, login of role \"%s\" admitted without a budget check",
						port->user_name)));

	if (would_refuse || refused)
		cg_report_refusal(s, &hit, in_use, refused);
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
 * cg_recharge_if_renamed: late naming.  Called by statements.c at the end
 * of each statement until the first one that is not a SET: when the
 * session's application_name is no longer the one it is charged by, charge
 * it to the budget the new name matches (first, below that budget's limit,
 * as at login), then give the old charge back; when the new budget has no
 * place, end the session with the login's refusal.  Afterwards, naming is
 * closed by the caller and later names change nothing.
 */
void
cg_recharge_if_renamed(void)
{
	CgSession  *s = cg_my_session();
	char		name[NAMEDATALEN];
	int			budget;
	bool		refused = false;
	bool		would_refuse = false;
	uint32		in_use = 0;
	CgBudget	hit;

	if (s == NULL)
		return;
	strlcpy(name, application_name ? application_name : "", NAMEDATALEN);
	if (strcmp(name, s->application_name) == 0)
		return;

	cg_await_publish();
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (s->pid != MyProcPid || s->budget == CG_NOT_CHARGED)
	{
		LWLockRelease(cg_shared->lock);
		return;
	}
	budget = cg_shared->state == CG_STATE_UNLOADED ? CG_UNBUDGETED :
		cg_match_budget(name, s->role_name, s->database_name);
	if (budget != s->budget)
	{
		refused = !cg_charge_to(budget, s->exempt, &hit, &in_use,
								&would_refuse);
		if (!refused)
		{
			int			old = s->budget;

			pg_atomic_fetch_add_u64(&cg_counters(budget)->admitted, 1);
			s->budget = budget;
			pg_atomic_fetch_sub_u32(&cg_counters(old)->total, 1);
		}
	}
	/* the slot's name is the one it is charged by (publish re-matches it) */
	if (!refused)
		strlcpy(s->application_name, name, NAMEDATALEN);
	LWLockRelease(cg_shared->lock);

	if (would_refuse || refused)
	{
		CgSession	late = *s;

		/* the event names the application that was refused */
		strlcpy(late.application_name, name, NAMEDATALEN);
		cg_report_refusal(&late, &hit, in_use, refused);
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
