/*-------------------------------------------------------------------------
 *
 * naming.c
 *		Names after login: a session that came without a name and names
 *		itself (role or database defaults, or SET application_name before
 *		its first statement that is not a SET) is re-charged to the budget
 *		that name matches before the statement runs, or ended with the
 *		login's refusal.
 *
 * A login's name (cg_login_name) is the startup packet's
 * application_name, else its options' -c application_name: known at
 * login, final.  A login with neither is charged by the empty name, and
 * statements.c calls cg_recharge_if_renamed at the start of its first
 * statement (a name from role or database defaults, which PostgreSQL
 * applies after the login hook: re-charged, naming closed), at the start
 * of its first statement that is not a SET (a name SET since login), and
 * at the end of that statement (set_config in it); then naming is closed.
 * Each re-charge is checked before the statement runs, so a refused
 * session runs nothing.
 *
 * A re-charge is judged like a login (cg_charge_login_locked): below the
 * new budget's limit, behind the logins already waiting for it, and with
 * login_wait it waits in the same queue under the same rules (waitq.c).
 * The new budget is charged first and only then is the old charge given
 * back, all under the shared lock, so a publish never sees the session
 * charged twice or not at all; the old budget's oldest waiter is woken.
 * A session that gives up one of its old budget's guaranteed slots is
 * checked against the other budgets' floors, as a login is.  Then, last,
 * the new budget's login_rate (ratelimit.c): a token, or with login_wait
 * a wait for it (the session keeps its new charge meanwhile), or the
 * rate's refusal.
 *
 * Lock rules: cg_shared->lock, shared, for the re-charge only, never
 * across the wait; the name is published with the session slot's seqlock
 * (cg_session_set_name) so that a publisher re-matching it reads it whole.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/naming.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/*
 * cg_options_name: the application_name the startup packet's options
 * give (-c application_name=... or --application_name=..., the last one
 * wins, as when PostgreSQL applies them), or NULL.  Allocates only when
 * the packet has options.
 */
static char *
cg_options_name(Port *port)
{
	char	  **av;
	int			ac = 0;
	int			i;
	char	   *found = NULL;

	if (port->cmdline_options == NULL || port->cmdline_options[0] == '\0')
		return NULL;
	av = palloc(sizeof(char *) * (strlen(port->cmdline_options) / 2 + 2));
	pg_split_opts(av, &ac, port->cmdline_options);
	for (i = 0; i < ac; i++)
	{
		const char *opt = NULL;
		char	   *name;
		char	   *value;

		if (strcmp(av[i], "-c") == 0 && i + 1 < ac)
			opt = av[++i];
		else if (strncmp(av[i], "-c", 2) == 0 || strncmp(av[i], "--", 2) == 0)
			opt = av[i] + 2;
		if (opt == NULL)
			continue;
		ParseLongOption(opt, &name, &value);
		/* setting names are case-insensitive: -c Application_Name=x too */
		if (value != NULL && pg_strcasecmp(name, "application_name") == 0)
			found = value;
	}
	return found;
}

/*
 * cg_packet_name: the application_name among the startup packet's other
 * parameters, whatever the case of its name (the last one wins, as when
 * PostgreSQL applies them), or NULL.  port->application_name has only the
 * one spelled in lower case.
 */
static char *
cg_packet_name(Port *port)
{
	char	   *found = NULL;
	int			i;

	for (i = 0; i + 1 < list_length(port->guc_options); i += 2)
		if (pg_strcasecmp((char *) list_nth(port->guc_options, i),
						  "application_name") == 0)
			found = (char *) list_nth(port->guc_options, i + 1);
	return found;
}

/*
 * cg_login_name: the name a login is charged by, or NULL when it has
 * none: the startup packet's application_name (in any case), else its
 * options' (-c application_name), the name PostgreSQL will give the
 * session.  Role
 * and database defaults cannot be read yet (pg_db_role_setting is not
 * readable before a database is selected): statements.c re-charges by
 * them at the session's first statement.  Called by the login hook.
 */
char *
cg_login_name(Port *port)
{
	char	   *name = port->application_name;

	if (name != NULL && name[0] != '\0')
		return name;
	name = cg_packet_name(port);
	if (name != NULL && name[0] != '\0')
		return name;
	return cg_options_name(port);
}

/*
 * cg_swap_charge_locked: the session, charged to "old", is charged to "to"
 * already (cg_charge_login_locked): move its charge there and give the old
 * one back.  The new name first: a publisher that reads it with the old
 * charge moves the session to "to" itself, and the swap then finds it
 * there.  Returns the counter slot whose oldest waiter to wake, or
 * CG_NOT_CHARGED.  Lock held, shared.
 */
static int
cg_swap_charge_locked(CgSession *s, const char *name, int old, int to)
{
	cg_session_set_name(s, name);
	for (;;)
	{
		uint32		expected = (uint32) old;

		if (pg_atomic_compare_exchange_u32(&s->charge, &expected,
										   (uint32) to))
			return cg_release_slot(old) ? old : CG_NOT_CHARGED;
		old = (int32) expected;
		if (old == to)
		{
			/* a publish moved it there already: one charge too many */
			(void) cg_release_slot(to);
			return CG_NOT_CHARGED;
		}
	}
}

/*
 * cg_recharge_if_renamed: when the session's application_name is no longer
 * the one it is charged by, charge it to the budget the new name matches
 * (as a login: limit, queue, login_wait), then give the old charge back;
 * when the new budget has no place, end the session with the login's
 * refusal.  Called by statements.c while naming is open (the file
 * header).  An ERROR while waiting (cancel, statement_timeout) leaves the
 * queue and the old charge as they were.
 */
void
cg_recharge_if_renamed(void)
{
	CgSession  *s = cg_my_session();
	char		name[NAMEDATALEN];
	int			slot;
	int			old;
	int			to;
	int			wake = CG_NOT_CHARGED;
	bool		locked;
	CgLogin		l;
	CgVerdict	v;

	if (s == NULL)
		return;
	strlcpy(name, application_name ? application_name : "", NAMEDATALEN);
	if (strcmp(name, s->application_name) == 0)
		return;
	slot = s - cg_sessions;
	memset(&l, 0, sizeof(l));
	l.late = true;
	l.exempt = s->exempt;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	old = cg_session_charge(s);
	if (s->pid != MyProcPid || old == CG_NOT_CHARGED)
	{
		LWLockRelease(cg_shared->lock);
		return;
	}
	l.budget = cg_shared->state == CG_STATE_UNLOADED ? CG_UNBUDGETED :
		cg_match_budget(name, s->role_name, s->database_name);
	if (cg_budget_slot(l.budget) == old)
	{
		/* the slot's name is the one it is charged by (publish re-matches it) */
		cg_session_set_name(s, name);
		LWLockRelease(cg_shared->lock);
		return;
	}
	strlcpy(s->wait_name, name, NAMEDATALEN);
	v = cg_charge_login_locked(s, slot, &l);
	locked = true;
	if (v == CG_WAIT)
	{
		LWLockRelease(cg_shared->lock);
		locked = false;
		l.waited = true;
		PG_TRY();
		{
			v = cg_wait_for_place(s, slot, &l);
		}
		PG_CATCH();
		{
			cg_waitq_exit();
			PG_RE_THROW();
		}
		PG_END_TRY();
		/* admitted: charged, and under the lock again */
		locked = (v == CG_ADMITTED);
	}
	if (v == CG_ADMITTED)
	{
		bool		within_floor;

		old = cg_session_charge(s);
		to = cg_budget_slot(l.budget);
		/* leaving a floor budget within its floor frees a guaranteed slot */
		within_floor = cg_slot_within_floor(old);
		wake = cg_swap_charge_locked(s, name, old, to);

		/*
		 * As a login: a session that gave up a slot guaranteed to its old
		 * budget may not keep it for a budget outside its own floor when
		 * the other budgets' floors need it.
		 */
		if (within_floor && !s->exempt && cg_mode != CG_MODE_OFF &&
			cg_floors_refuse(l.budget, l.in_use, &l.fr))
		{
			CgCounters *c = cg_slot_counters(to);

			if (cg_mode == CG_MODE_ENFORCE && !l.hit.monitor)
			{
				v = CG_REFUSED_FLOORS;
				pg_atomic_fetch_add_u64(&c->refused_for_floors, 1);
				cg_note_refused(c);
			}
			else
			{
				l.would_refuse_floors = true;
				pg_atomic_fetch_add_u64(&c->would_refuse, 1);
			}
		}
		cg_wake_queue(wake);

		/* rated like a login, last: a refused one used no token */
		if (v == CG_ADMITTED)
			v = cg_rate_check_locked(&l);
	}
	if (locked)
		LWLockRelease(cg_shared->lock);

	/*
	 * Paced: the session is charged to its new budget already (it is a
	 * session: no place to give back), and waits for its token.
	 */
	if (v == CG_PACE)
	{
		l.paced = true;
		PG_TRY();
		{
			v = cg_pace(&l);
		}
		PG_CATCH();
		{
			cg_rate_refund(&l);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (v == CG_ADMITTED)
		{
			l.has_token = false;
			cg_rate_refund(&l);	/* used: only forgets it */
		}
	}
	/* admitted under its new name: counted once, when it is final */
	if (v == CG_ADMITTED)
		pg_atomic_fetch_add_u64(&cg_slot_counters(l.budget == CG_UNBUDGETED ?
												  CG_UNBUDGETED :
												  l.hit.slot)->admitted, 1);

	cg_login_event(s, name, &l, v);
	if (v != CG_ADMITTED)
		cg_refuse_login(&l, v);
}
