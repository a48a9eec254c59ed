/*-------------------------------------------------------------------------
 *
 * idle.c
 *		Idle endings: one sweep over the counted sessions, ending those
 *		past their budget's idle timeouts.
 *
 * A sweep copies the candidate sessions and their policies under the shared
 * lock, joins them with a fresh copy of the backend status array (state
 * and state start), then per budget spares the idle_keep most recently
 * active idle sessions and ends the others past their deadline (or records
 * that it would, for monitor budgets and modes).  Exempt sessions are
 * never candidates; a session that LISTENs is idle by design and spared
 * from idle_timeout, never from idle_in_transaction_timeout (an open
 * transaction holds locks and its snapshot whatever it listens for).  An ending marks the session
 * slot before the signal, so that the session's FATAL says which budget
 * ended it and why (refusal.c).  It returns when the next session can be
 * due, for the worker's sleep.  It reads shared memory only, so it needs
 * neither a database nor a transaction; conngov.sweep() runs the same code
 * in a backend.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/idle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_authid_d.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* Re-check interval while a kept (warm pool) session is past its timeout. */
#define CG_KEPT_RECHECK_MS		1000

/* A counted session the sweep looks at. */
typedef struct CgCandidate
{
	int			pid;
	int			slot;			/* its CgSession */
	int			charge;			/* the counter slot it is charged to */
	int			budget;			/* its budget's index when collected */
	int			pol;			/* its budget's policy: sw->pol[pol] */
	bool		seen;			/* found in the backend status array */
	bool		in_xact;		/* idle in transaction (or aborted) */
	bool		listening;		/* LISTEN: spared when idle, not in a
								 * transaction */
	TimestampTz since;			/* state start */
	TimestampTz noted;			/* idle period already handled */
	bool		noted_ended;	/* ... by ending it (else: would_end_idle) */
} CgCandidate;

/* The policy part of a budget, copied out of shared memory. */
typedef struct CgPolicy
{
	char		name[NAMEDATALEN];
	bool		monitor;
	int64		idle_timeout_ms;
	int64		idle_in_xact_timeout_ms;
	int32		idle_keep;
} CgPolicy;

static int
cg_candidate_pid_cmp(const void *a, const void *b)
{
	const CgCandidate *ca = (const CgCandidate *) a;
	const CgCandidate *cb = (const CgCandidate *) b;

	return (ca->pid > cb->pid) - (ca->pid < cb->pid);
}

/* By budget, plain idle before idle in transaction, most recent first. */
static int
cg_candidate_keep_cmp(const void *a, const void *b)
{
	const CgCandidate *ca = (const CgCandidate *) a;
	const CgCandidate *cb = (const CgCandidate *) b;

	if (ca->budget != cb->budget)
		return (ca->budget > cb->budget) - (ca->budget < cb->budget);
	if (ca->in_xact != cb->in_xact)
		return ca->in_xact ? 1 : -1;
	return (ca->since < cb->since) - (ca->since > cb->since);
}

/*
 * cg_end_session: end one idle session (or record that it would be ended)
 * and write its log line, event and counter.
 */
static void
cg_end_session(const CgCandidate *c, const CgPolicy *p, bool act,
			   int64 idle_ms, int64 timeout_ms, CgSweepResult *r)
{
	CgSession  *s = &cg_sessions[c->slot];
	char		detail[128];

	if (act)
	{
		PGPROC	   *proc = BackendPidGetProc(c->pid);

		if (proc == NULL)
			return;				/* it is gone already */
		/* tell the session why, for its FATAL message (refusal.c) */
		s->end_in_xact = c->in_xact;
		s->end_timeout_code = (cg_ending_sqlstate == CG_ENDING_TIMEOUT);
		s->end_idle_ms = idle_ms;
		s->end_timeout_ms = timeout_ms;
		strlcpy(s->end_budget, p->name, NAMEDATALEN);
		pg_write_barrier();
		s->end_pid = c->pid;
		if (kill(c->pid, SIGTERM) != 0)
		{
			s->end_pid = 0;
			return;				/* it is gone already */
		}
	}
	s->idle_noted_since = c->since;
	s->idle_noted_ended = act;

	/* the slot may have gone to another budget since: check its name */
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (strcmp(cg_slots[c->charge].name, p->name) == 0)
		pg_atomic_fetch_add_u64(act ? &cg_slots[c->charge].c.ended_idle :
								&cg_slots[c->charge].c.would_end_idle, 1);
	LWLockRelease(cg_shared->lock);

	ereport(LOG,
			(errmsg("conngov %s session %d of budget \"%s\": %s for %.1f s (limit %.1f s), application \"%s\", role \"%s\"",
					act ? "ended" : "would end",
					c->pid, p->name,
					c->in_xact ? "idle in transaction" : "idle",
					idle_ms / 1000.0, timeout_ms / 1000.0,
					r->application_name, r->role_name)));

	snprintf(detail, sizeof(detail), "%s for %.1f s (limit %.1f s)",
			 c->in_xact ? "idle in transaction" : "idle",
			 idle_ms / 1000.0, timeout_ms / 1000.0);
	cg_add_event(act ? CG_EVENT_ENDED_IDLE : CG_EVENT_WOULD_END_IDLE,
				 p->name, c->pid, r->role_name, r->database_name,
				 r->application_name, NULL, detail);
}

/*
 * cg_may_signal: whether role may end the session of pid, by the rules of
 * pg_terminate_backend (a member of the session's role, or of
 * pg_signal_backend for a session of a role that is not a superuser).
 */
static bool
cg_may_signal(Oid role, int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);
	Oid			target;

	if (proc == NULL)
		return false;
	target = proc->roleId;
	if (superuser_arg(role))
		return true;
	if (!OidIsValid(target) || superuser_arg(target))
		return false;
	return has_privs_of_role(role, target) ||
		has_privs_of_role(role, ROLE_PG_SIGNAL_BACKEND);
}

/* One sweep's working state. */
typedef struct CgSweep
{
	TimestampTz now;
	TimestampTz next;			/* when the next session can be due, 0 never */
	bool		dry_run;
	Oid			as_role;		/* InvalidOid: no permission check */
	CgPolicy   *pol;			/* one per candidate (cand[i].pol) */
	CgCandidate *cand;			/* counted sessions with a timeout */
	int			ncand;
	CgSweepResult *results;
	int			nresults;
} CgSweep;

static void
cg_sweep_wake_by(CgSweep *sw, TimestampTz at)
{
	if (sw->next == 0 || at < sw->next)
		sw->next = at;
}

/*
 * cg_sweep_collect: copy the counted, governable sessions and their
 * budgets' policies under the shared lock: work in the number of sessions,
 * not of budgets.  Anything going idle from now on is due no sooner than
 * now plus the smallest timeout of all budgets (computed at publish).
 */
static void
cg_sweep_collect(CgSweep *sw)
{
	int64		min_timeout_ms;
	int			i;

	sw->pol = palloc(sizeof(CgPolicy) * cg_nsessions);
	sw->cand = palloc(sizeof(CgCandidate) * cg_nsessions);

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	min_timeout_ms = cg_shared->set[cg_shared->active].min_timeout_ms;
	for (i = 0; i < cg_nsessions; i++)
	{
		const CgSession *s = &cg_sessions[i];
		int			pid = s->pid;
		int			charge;
		int			budget;
		const CgBudget *b;
		CgPolicy   *p;
		CgCandidate *c;

		pg_read_barrier();
		charge = cg_session_charge(s);
		if (pid == 0 || charge < 0 || s->exempt)
			continue;
		/* -1: a budget just removed; the publisher moves it on */
		budget = cg_slots[charge].index[cg_shared->active];
		if (budget < 0)
			continue;
		b = &cg_budgets[budget];
		if (b->idle_timeout_ms == 0 && b->idle_in_xact_timeout_ms == 0)
			continue;
		p = &sw->pol[sw->ncand];
		strlcpy(p->name, b->name, NAMEDATALEN);
		p->monitor = b->monitor;
		p->idle_timeout_ms = b->idle_timeout_ms;
		p->idle_in_xact_timeout_ms = b->idle_in_xact_timeout_ms;
		p->idle_keep = b->idle_keep;
		c = &sw->cand[sw->ncand];
		c->pid = pid;
		c->slot = i;
		c->charge = charge;
		c->budget = budget;
		c->pol = sw->ncand;
		c->seen = false;
		c->in_xact = false;
		c->listening = s->listening;
		c->since = 0;
		c->noted = s->idle_noted_since;
		c->noted_ended = s->idle_noted_ended;
		sw->ncand++;
	}
	LWLockRelease(cg_shared->lock);

	if (min_timeout_ms > 0)
		cg_sweep_wake_by(sw, TimestampTzPlusMilliseconds(sw->now, min_timeout_ms));
}

/*
 * cg_sweep_states: each candidate's state and its start, from a fresh copy
 * of the backend status array, joined by pid.  Candidates that are not
 * idle (or idle in transaction) stay unseen.
 */
static void
cg_sweep_states(CgSweep *sw)
{
	int			nbe;
	int			i;

	qsort(sw->cand, sw->ncand, sizeof(CgCandidate), cg_candidate_pid_cmp);
	pgstat_clear_backend_activity_snapshot();
	nbe = pgstat_fetch_stat_numbackends();
	for (i = 1; i <= nbe; i++)
	{
		LocalPgBackendStatus *l = cg_local_beentry(i);
		PgBackendStatus *be;
		CgCandidate key;
		CgCandidate *c;

		if (l == NULL)
			continue;
		be = &l->backendStatus;
		if (be->st_backendType != B_BACKEND)
			continue;
		key.pid = be->st_procpid;
		c = bsearch(&key, sw->cand, sw->ncand, sizeof(CgCandidate),
					cg_candidate_pid_cmp);
		if (c == NULL)
			continue;
		if (be->st_state == STATE_IDLE)
		{
			/* a listener is idle by design: spared from idle_timeout */
			if (c->listening)
				continue;
			c->in_xact = false;
		}
		else if (be->st_state == STATE_IDLEINTRANSACTION ||
				 be->st_state == STATE_IDLEINTRANSACTION_ABORTED)
			c->in_xact = true;
		else
			continue;
		c->seen = true;
		c->since = be->st_state_start_timestamp;
	}
}

/*
 * cg_sweep_act: a candidate past its deadline: end it (or record that it
 * would be ended) unless that was done for this idle period, and list it.
 */
static void
cg_sweep_act(CgSweep *sw, const CgCandidate *c, const CgPolicy *p,
			 int64 timeout_ms)
{
	bool		act = (cg_mode == CG_MODE_ENFORCE && !p->monitor);
	CgSweepResult *r = &sw->results[sw->nresults];
	const CgSession *s = &cg_sessions[c->slot];

	/* handled already: ended, or recorded and still not to be ended */
	if (!sw->dry_run && c->noted == c->since && (c->noted_ended || !act))
		return;

	r->pid = c->pid;
	strlcpy(r->budget, p->name, NAMEDATALEN);
	strlcpy(r->application_name, s->application_name, NAMEDATALEN);
	strlcpy(r->role_name, s->role_name, NAMEDATALEN);
	strlcpy(r->database_name, s->database_name, NAMEDATALEN);
	r->in_xact = c->in_xact;
	r->idle_ms = (sw->now - c->since) / 1000;
	r->timeout_ms = timeout_ms;
	r->ended = act;
	r->permitted = !OidIsValid(sw->as_role) || cg_may_signal(sw->as_role, c->pid);
	if (s->pid != c->pid)
		return;					/* slot reused meanwhile */
	if (!r->permitted)
		r->ended = false;
	else if (!sw->dry_run)
		cg_end_session(c, p, act, r->idle_ms, timeout_ms, r);
	sw->nresults++;
}

/*
 * cg_sweep_decide: per budget, spare the idle_keep most recently active
 * idle sessions and act on the others past their deadline; note when the
 * next one is due.
 */
static void
cg_sweep_decide(CgSweep *sw)
{
	int			kept = 0;
	int			cur_budget = -1;
	int			i;

	qsort(sw->cand, sw->ncand, sizeof(CgCandidate), cg_candidate_keep_cmp);
	for (i = 0; i < sw->ncand; i++)
	{
		const CgCandidate *c = &sw->cand[i];
		const CgPolicy *p = &sw->pol[c->pol];
		int64		timeout_ms;
		TimestampTz deadline;

		if (!c->seen)
			continue;
		if (c->budget != cur_budget)
		{
			cur_budget = c->budget;
			kept = 0;
		}
		timeout_ms = c->in_xact ? p->idle_in_xact_timeout_ms : p->idle_timeout_ms;
		if (timeout_ms == 0 && (c->in_xact || kept >= p->idle_keep))
			continue;
		deadline = TimestampTzPlusMilliseconds(c->since, timeout_ms);
		if (!c->in_xact && kept < p->idle_keep)
		{
			kept++;
			/* a newer idle session can take its place: look again soon */
			if (timeout_ms > 0)
				cg_sweep_wake_by(sw, deadline > sw->now ? deadline :
								 TimestampTzPlusMilliseconds(sw->now, CG_KEPT_RECHECK_MS));
			continue;
		}
		if (deadline > sw->now)
			cg_sweep_wake_by(sw, deadline);
		else
			cg_sweep_act(sw, c, p, timeout_ms);
	}
}

/*
 * cg_sweep: one idle sweep.  Ends the sessions past their deadline (or, with
 * dry_run, only lists them) and returns when the next one can be due, 0 for
 * never.  Fills *results (palloc'd, *nresults entries) with what it ended or
 * would end.  With as_role valid (conngov.sweep() called by a role that is
 * not a superuser), only sessions that role could end with
 * pg_terminate_backend are ended; the others are listed as not permitted.
 * Needs no transaction (the worker runs it outside one) unless as_role is
 * valid.
 */
TimestampTz
cg_sweep(bool dry_run, Oid as_role, CgSweepResult **results, int *nresults)
{
	CgSweep		sw;

	memset(&sw, 0, sizeof(sw));
	sw.now = GetCurrentTimestamp();
	sw.dry_run = dry_run;
	sw.as_role = as_role;
	*results = NULL;
	*nresults = 0;
	if (cg_mode == CG_MODE_OFF)
		return 0;

	cg_sweep_collect(&sw);
	if (sw.ncand > 0)
	{
		sw.results = palloc(sizeof(CgSweepResult) * sw.ncand);
		cg_sweep_states(&sw);
		cg_sweep_decide(&sw);
	}
	pfree(sw.pol);
	pfree(sw.cand);
	*results = sw.results;
	*nresults = sw.nresults;
	return sw.next;
}
