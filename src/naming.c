/*-------------------------------------------------------------------------
 *
 * naming.c
 *		Late naming: a session that names itself after login (SET
 *		application_name before its first statement that is not a SET) is
 *		re-charged to the budget that name matches, or ended with the
 *		login's refusal.
 *
 * The same charge and refusal serve late naming as logins
 * (cg_recharge_if_renamed, called by statements.c): the new budget is
 * charged first, below its limit, and only then is the old charge given
 * back, all under the shared lock, so a publish never sees the session
 * charged twice or not at all.
 *
 * Lock rules: cg_shared->lock, shared, for the re-charge only; the name is
 * published with the session slot's seqlock (cg_session_set_name) so that
 * a publisher re-matching it reads it whole.
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

	cg_port_addr(port, addr, sizeof(addr));

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
				pg_atomic_write_u64(&c->last_refused_at,
									(uint64) GetCurrentTimestamp());
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
					pg_atomic_write_u64(&c->last_refused_at,
										(uint64) GetCurrentTimestamp());
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
