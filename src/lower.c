/*-------------------------------------------------------------------------
 *
 * lower.c
 *		Lowering a limit at runtime (on_lower = 'end_idle'): the worker ends
 *		idle sessions above the new limit, longest idle first.
 *
 * A publish that lowers the max_connections of a budget whose on_lower is
 * end_idle marks the budget's counter slot (lower_pending) and wakes the
 * worker (cg_note_lowered).  The worker's next pass, within the second,
 * takes the marks and, per marked budget still over its new limit, ends as
 * many sessions as it is over, at most, choosing among the sessions in
 * state idle (not in a transaction), never an active, listening or exempt
 * one, the longest idle first: a budget never goes below its new limit
 * for this, and a budget whose excess is busy stays over it (new logins
 * are refused until it is below, as with refuse_new).  It acts once per
 * lowering: sessions that turn idle later are left to idle_timeout.  The
 * steps are idle.c's: collect (under the shared lock), states (a fresh
 * copy of the backend status array), decide, act.  The ending marks the
 * session before its SIGTERM, so that its FATAL names the lowering
 * (refusal.c); it is logged, counted (stats().ended_lowered) and recorded
 * as an event (ended_lowered).  Monitor budgets and conngov.mode other
 * than enforce end nobody.
 *
 * Lock rules: cg_shared->lock, shared, to collect; the marks are atomics;
 * nothing is held while signalling.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/lower.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* A budget lowered below its total, copied out. */
typedef struct CgLowered
{
	int			slot;
	char		name[NAMEDATALEN];
	int32		limit;
	int			excess;			/* total - limit when collected */
} CgLowered;

/* A session of a lowered budget. */
typedef struct CgLowSession
{
	int			pid;
	int			session;		/* its CgSession */
	int			lowered;		/* its budget: an index of the CgLowered */
	bool		idle;			/* in state idle, not listening */
	TimestampTz since;			/* idle since */
	char		application_name[NAMEDATALEN];
	char		role_name[NAMEDATALEN];
	char		database_name[NAMEDATALEN];
} CgLowSession;

/*
 * cg_note_lowered: a publish lowered the limit of the budget of counter
 * slot "slot", whose on_lower is end_idle: mark it for the worker and wake
 * it.  Called by cg_publish_budgets after the flip.
 */
void
cg_note_lowered(int slot)
{
	pg_atomic_write_u32(&cg_slots[slot].c.lower_pending, 1);
	pg_atomic_write_u32(&cg_shared->lower_pending, 1);
	cg_wake_worker();
}

static int
cg_low_pid_cmp(const void *a, const void *b)
{
	const CgLowSession *x = (const CgLowSession *) a;
	const CgLowSession *y = (const CgLowSession *) b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* By budget, idle first, longest idle first. */
static int
cg_low_order_cmp(const void *a, const void *b)
{
	const CgLowSession *x = (const CgLowSession *) a;
	const CgLowSession *y = (const CgLowSession *) b;

	if (x->lowered != y->lowered)
		return (x->lowered > y->lowered) - (x->lowered < y->lowered);
	if (x->idle != y->idle)
		return x->idle ? -1 : 1;
	return (x->since > y->since) - (x->since < y->since);
}

/*
 * cg_lower_collect: the marked budgets over their limit (taking the
 * marks), and their governable sessions.  Returns the number of
 * sessions in *sessions; *nlow budgets in *low.
 */
static int
cg_lower_collect(CgLowered **low, int *nlow, CgLowSession **sessions)
{
	CgLowered  *l = palloc(sizeof(CgLowered) * cg_nslots);
	CgLowSession *s = palloc(sizeof(CgLowSession) * cg_nsessions);
	int			n = 0;
	int			ns = 0;
	int		   *low_of;
	int			i;

	low_of = palloc(sizeof(int) * cg_nslots);
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nslots; i++)
	{
		CgCounters *c = &cg_slots[i].c;
		int			budget;
		const CgBudget *b;
		uint32		total;

		low_of[i] = -1;
		if (pg_atomic_read_u32(&c->lower_pending) == 0 ||
			pg_atomic_exchange_u32(&c->lower_pending, 0) == 0)
			continue;
		budget = cg_slots[i].index[cg_shared->active];
		if (budget < 0 || cg_mode != CG_MODE_ENFORCE)
			continue;
		b = &cg_budgets[budget];
		total = pg_atomic_read_u32(&c->total);
		if (b->monitor || !b->on_lower_end_idle ||
			(int64) total <= (int64) b->max_connections)
			continue;
		l[n].slot = i;
		strlcpy(l[n].name, b->name, NAMEDATALEN);
		l[n].limit = b->max_connections;
		l[n].excess = (int) ((int64) total - b->max_connections);
		low_of[i] = n++;
	}
	for (i = 0; n > 0 && i < cg_nsessions; i++)
	{
		const CgSession *cs = &cg_sessions[i];
		int			pid = cs->pid;
		int			charge;

		pg_read_barrier();
		charge = cg_session_charge(cs);
		if (pid == 0 || charge < 0 || cs->exempt || cs->listening ||
			low_of[charge] < 0)
			continue;
		s[ns].pid = pid;
		s[ns].session = i;
		s[ns].lowered = low_of[charge];
		s[ns].idle = false;
		s[ns].since = 0;
		strlcpy(s[ns].application_name, cs->application_name, NAMEDATALEN);
		strlcpy(s[ns].role_name, cs->role_name, NAMEDATALEN);
		strlcpy(s[ns].database_name, cs->database_name, NAMEDATALEN);
		ns++;
	}
	LWLockRelease(cg_shared->lock);
	pfree(low_of);

	*low = l;
	*nlow = n;
	*sessions = s;
	return ns;
}

/*
 * cg_lower_states: which sessions are idle (not in a transaction), and
 * since when, from a fresh copy of the backend status array.
 */
static void
cg_lower_states(CgLowSession *s, int ns)
{
	int			nbe;
	int			i;

	qsort(s, ns, sizeof(CgLowSession), cg_low_pid_cmp);
	pgstat_clear_backend_activity_snapshot();
	nbe = pgstat_fetch_stat_numbackends();
	for (i = 1; i <= nbe; i++)
	{
		LocalPgBackendStatus *lb = cg_local_beentry(i);
		CgLowSession key;
		CgLowSession *hit;

		if (lb == NULL || lb->backendStatus.st_backendType != B_BACKEND)
			continue;
		key.pid = lb->backendStatus.st_procpid;
		hit = bsearch(&key, s, ns, sizeof(CgLowSession), cg_low_pid_cmp);
		if (hit == NULL || lb->backendStatus.st_state != STATE_IDLE)
			continue;
		hit->idle = true;
		hit->since = lb->backendStatus.st_state_start_timestamp;
	}
	pgstat_clear_backend_activity_snapshot();
}

/*
 * cg_lower_act: end one idle session of a lowered budget: mark it for its
 * FATAL (refusal.c), signal it, log, count and record it.
 */
static void
cg_lower_act(const CgLowSession *s, const CgLowered *l, TimestampTz now)
{
	CgSession  *cs = &cg_sessions[s->session];
	int64		idle_ms = (now - s->since) / 1000;
	char		detail[128];

	if (cs->pid != s->pid || BackendPidGetProc(s->pid) == NULL)
		return;					/* it is gone already */
	cs->end_lowered = true;
	cs->end_limit = l->limit;
	cs->end_in_xact = false;
	cs->end_timeout_code = false;
	cs->end_idle_ms = idle_ms;
	cs->end_timeout_ms = 0;
	strlcpy(cs->end_budget, l->name, NAMEDATALEN);
	pg_write_barrier();
	cs->end_pid = s->pid;
	if (kill(s->pid, SIGTERM) != 0)
	{
		cs->end_pid = 0;
		return;
	}

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (strcmp(cg_slots[l->slot].name, l->name) == 0)
		pg_atomic_fetch_add_u64(&cg_slots[l->slot].c.ended_lowered, 1);
	LWLockRelease(cg_shared->lock);

	ereport(LOG,
			(errmsg("conngov ended session %d of budget \"%s\": idle for %.1f s, above the budget's lowered limit of %d, application \"%s\", role \"%s\"",
					s->pid, l->name, idle_ms / 1000.0, l->limit,
					s->application_name, s->role_name)));
	snprintf(detail, sizeof(detail), "idle for %.1f s; limit lowered to %d",
			 idle_ms / 1000.0, l->limit);
	cg_add_event(CG_EVENT_ENDED_LOWERED, l->name, s->pid, s->role_name,
				 s->database_name, s->application_name, NULL, detail);
}

/*
 * cg_end_lowered: the worker's step for lowered limits: per budget
 * marked since its last pass and still over its limit, end its idle
 * sessions above the limit, longest idle first (the file header).  O(1)
 * when nothing was lowered.
 */
void
cg_end_lowered(void)
{
	CgLowered  *low;
	CgLowSession *s;
	int			nlow;
	int			ns;
	int			i;
	int			cur = -1;
	int			ended = 0;
	TimestampTz now;

	if (pg_atomic_read_u32(&cg_shared->lower_pending) == 0 ||
		pg_atomic_exchange_u32(&cg_shared->lower_pending, 0) == 0)
		return;

	/* collect */
	ns = cg_lower_collect(&low, &nlow, &s);
	if (ns > 0)
	{
		/* states */
		cg_lower_states(s, ns);

		/* decide and act: per budget, the longest idle, up to the excess */
		now = GetCurrentTimestamp();
		qsort(s, ns, sizeof(CgLowSession), cg_low_order_cmp);
		for (i = 0; i < ns; i++)
		{
			if (s[i].lowered != cur)
			{
				cur = s[i].lowered;
				ended = 0;
			}
			if (!s[i].idle || ended >= low[cur].excess)
				continue;
			cg_lower_act(&s[i], &low[cur], now);
			ended++;
		}
	}
	pfree(low);
	pfree(s);
}
