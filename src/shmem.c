/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		conngov's shared state: its size, creation, counters and events.
 *
 * One segment holds, in order: CgSharedState, conngov.max_budgets budgets,
 * one CgSession per backend (indexed by PGPROC number) and the events ring
 * of conngov.event_capacity entries.  The lock rules are in conngov.h.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

CgSharedState *cg_shared = NULL;
CgBudget   *cg_budgets = NULL;
CgSession  *cg_sessions = NULL;
CgEvent    *cg_events = NULL;
int			cg_nsessions = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * cg_shmem_size: bytes needed for the whole state.  MaxBackends is known
 * by the time shmem_request_hook runs; client backends' PGPROC numbers are
 * all below it.
 */
static Size
cg_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(CgSharedState));
	size = add_size(size, MAXALIGN(mul_size(cg_max_budgets, sizeof(CgBudget))));
	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(CgSession))));
	size = add_size(size, mul_size(cg_event_capacity, sizeof(CgEvent)));
	return size;
}

static void
cg_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(cg_shmem_size());
	RequestNamedLWLockTranche(CG_TRANCHE_NAME, 2);
}

static void
cg_init_counters(CgCounters *c)
{
	pg_atomic_init_u32(&c->total, 0);
	pg_atomic_init_u32(&c->peak, 0);
	pg_atomic_init_u64(&c->admitted, 0);
	pg_atomic_init_u64(&c->refused, 0);
	pg_atomic_init_u64(&c->would_refuse, 0);
	pg_atomic_init_u64(&c->ended_idle, 0);
	pg_atomic_init_u64(&c->would_end_idle, 0);
	pg_atomic_init_u64(&c->last_refused_at, 0);
}

/*
 * cg_shmem_startup: create or attach the state.  Runs in the postmaster (and
 * again after a crash restart, when shared memory is new), under
 * AddinShmemInitLock.  A new state has no budgets loaded: logins are
 * admitted until the worker reads the table.
 */
static void
cg_shmem_startup(void)
{
	bool		found;
	char	   *base;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	base = ShmemInitStruct("conngov", cg_shmem_size(), &found);
	cg_shared = (CgSharedState *) base;
	base += MAXALIGN(sizeof(CgSharedState));
	cg_budgets = (CgBudget *) base;
	base += MAXALIGN(mul_size(cg_max_budgets, sizeof(CgBudget)));
	cg_sessions = (CgSession *) base;
	base += MAXALIGN(mul_size(MaxBackends, sizeof(CgSession)));
	cg_events = (CgEvent *) base;
	cg_nsessions = MaxBackends;

	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(CG_TRANCHE_NAME);
		int			i;

		memset(cg_shared, 0, cg_shmem_size());
		cg_shared->lock = &locks[0].lock;
		cg_shared->events_lock = &locks[1].lock;
		SpinLockInit(&cg_shared->mutex);
		cg_shared->state = CG_STATE_UNLOADED;
		cg_shared->stats_reset = GetCurrentTimestamp();
		pg_atomic_init_u32(&cg_shared->reload_requested, 0);
		pg_atomic_init_u32(&cg_shared->reload_done, 0);
		ConditionVariableInit(&cg_shared->reload_cv);
		cg_init_counters(&cg_shared->unbudgeted);
		for (i = 0; i < cg_max_budgets; i++)
			cg_init_counters(&cg_budgets[i].c);
		for (i = 0; i < cg_nsessions; i++)
			cg_sessions[i].budget = CG_NOT_CHARGED;
	}

	LWLockRelease(AddinShmemInitLock);
}

void
cg_shmem_init_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cg_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cg_shmem_startup;
}

/*
 * cg_require_shared_state: the check every SQL-callable function makes
 * first; then it waits for a committed change to be published.
 */
void
cg_require_shared_state(void)
{
	if (cg_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("conngov must be loaded via \"shared_preload_libraries\""),
				 errhint("Add conngov to \"shared_preload_libraries\" and restart the server.")));
	/* read-your-writes: a committed change to the budgets is published */
	cg_await_publish();
}

/*
 * cg_counters: the counters a session charged to "budget" bumps.  Caller
 * holds the lock (shared is enough) so that the index means the published
 * budgets.
 */
CgCounters *
cg_counters(int budget)
{
	Assert(budget != CG_NOT_CHARGED);
	if (budget == CG_UNBUDGETED)
		return &cg_shared->unbudgeted;
	return &cg_budgets[budget].c;
}

/*
 * cg_charge: count one more session unless that would take the total past
 * "limit" (-1: no limit).  A compare-and-swap loop, so that concurrent
 * logins never overshoot and a failed attempt leaves the total untouched.
 * *in_use gets the total after the charge, or the total that refused it.
 * Caller holds cg_shared->lock, shared.
 */
bool
cg_charge(CgCounters *c, int64 limit, uint32 *in_use)
{
	uint32		cur = pg_atomic_read_u32(&c->total);
	uint32		peak;

	for (;;)
	{
		if (limit >= 0 && cur >= (uint64) limit)
		{
			*in_use = cur;
			return false;
		}
		if (pg_atomic_compare_exchange_u32(&c->total, &cur, cur + 1))
			break;
	}
	*in_use = ++cur;

	peak = pg_atomic_read_u32(&c->peak);
	while (cur > peak)
	{
		if (pg_atomic_compare_exchange_u32(&c->peak, &peak, cur))
			break;
	}
	return true;
}

/*
 * cg_copy_usage: the budgets' figures, then the unbudgeted row (with
 * max_connections -1), and the load state if asked.  Returns the number of
 * rows in *rows (palloc'd).  Holds the lock, shared, for the copy only.
 */
int
cg_copy_usage(CgUsageRow **rows, CgLoadState *state)
{
	CgUsageRow *r = palloc(sizeof(CgUsageRow) * (cg_max_budgets + 1));
	int			n;
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	if (state)
		*state = cg_shared->state;
	n = cg_shared->nbudgets;
	for (i = 0; i < n; i++)
	{
		CgBudget   *b = &cg_budgets[i];

		memcpy(r[i].name, b->name, NAMEDATALEN);
		r[i].monitor = b->monitor;
		r[i].max_connections = b->max_connections;
		r[i].total = pg_atomic_read_u32(&b->c.total);
		r[i].peak = pg_atomic_read_u32(&b->c.peak);
		r[i].last_refused_at = (TimestampTz)
			pg_atomic_read_u64(&cg_counters(i)->last_refused_at);
	}
	LWLockRelease(cg_shared->lock);

	strlcpy(r[n].name, CG_UNBUDGETED_NAME, NAMEDATALEN);
	r[n].monitor = false;
	r[n].max_connections = -1;
	r[n].total = pg_atomic_read_u32(&cg_shared->unbudgeted.total);
	r[n].peak = pg_atomic_read_u32(&cg_shared->unbudgeted.peak);
	r[n].last_refused_at = 0;

	*rows = r;
	return n + 1;
}

/*
 * cg_add_event: append one event to the ring, overwriting the oldest when
 * full.  Holds events_lock only for the time stamp and the copy.
 */
void
cg_add_event(CgEventKind kind, const char *budget, int pid,
			 const char *role_name, const char *database_name,
			 const char *application_name, const char *client_addr,
			 const char *detail)
{
	CgEvent		ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.pid = pid;
	strlcpy(ev.budget, budget ? budget : "", NAMEDATALEN);
	strlcpy(ev.role_name, role_name ? role_name : "", NAMEDATALEN);
	strlcpy(ev.database_name, database_name ? database_name : "", NAMEDATALEN);
	strlcpy(ev.application_name, application_name ? application_name : "",
			NAMEDATALEN);
	strlcpy(ev.client_addr, client_addr ? client_addr : "",
			sizeof(ev.client_addr));
	strlcpy(ev.detail, detail ? detail : "", sizeof(ev.detail));

	LWLockAcquire(cg_shared->events_lock, LW_EXCLUSIVE);
	/* stamped under the lock: ring order is time order (events(since)) */
	ev.at = GetCurrentTimestamp();
	cg_events[cg_shared->event_next % cg_event_capacity] = ev;
	cg_shared->event_next++;
	LWLockRelease(cg_shared->events_lock);
}

/*
 * cg_wake_worker: set the worker's latch, if it runs.  Safe in a commit
 * callback: takes a spinlock and cannot fail.
 */
void
cg_wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&cg_shared->mutex);
	latch = cg_shared->worker_latch;
	SpinLockRelease(&cg_shared->mutex);
	if (latch)
		SetLatch(latch);
}
