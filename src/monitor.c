/*-------------------------------------------------------------------------
 *
 * monitor.c
 *		Monitoring functions: headroom(), health(), stats(), events() and
 *		reset_stats().
 *
 * 1.1 adds the floors (guaranteed_unused, shared_free, a "floors" check
 * in health()) and the waits (stats()); the functions keep answering the
 * 1.0 declarations, told apart by their C symbol.
 *
 * headroom() counts free process slots with PostgreSQL's own
 * HaveNFreeProcs(), the check that answers "remaining connection slots are
 * reserved", so sessions still authenticating count as in use.  The rest
 * reads conngov's counters and events ring; nothing here scans backends.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/monitor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid_d.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

PG_FUNCTION_INFO_V1(conngov_headroom);
PG_FUNCTION_INFO_V1(conngov_headroom_1_1);
PG_FUNCTION_INFO_V1(conngov_health);
PG_FUNCTION_INFO_V1(conngov_stats);
PG_FUNCTION_INFO_V1(conngov_stats_1_1);
PG_FUNCTION_INFO_V1(conngov_stats_1_2);
PG_FUNCTION_INFO_V1(conngov_reset_stats);
PG_FUNCTION_INFO_V1(conngov_events);

typedef struct CgHeadroom
{
	int			max_connections;
	int			superuser_reserved;
	int			reserved;
	int			normal_slots;
	int			normal_in_use;
	int			normal_free;
	int			reserved_in_use;
	int			reserved_free;
	int64		budgeted_total;
	bool		oversubscribed;
	const char *status;
	/* 1.1 */
	int			guaranteed_unused;	/* sum of the unused floors */
	int			shared_free;	/* normal_free - guaranteed_unused, >= 0 */
	bool		has_floors;
	int64		floors_sum;
} CgHeadroom;

/*
 * cg_normal_slots: the slots a role without reserved privileges can use.
 */
int
cg_normal_slots(void)
{
	return Max(MaxConnections - CG_SUPERUSER_RESERVED() -
			   CG_RESERVED_CONNECTIONS(), 0);
}

/*
 * cg_errdetail_slots: the DETAIL of a message about the normal slots, for
 * ereport(): how max_connections splits.
 */
int
cg_errdetail_slots(void)
{
	return errdetail("max_connections is %d, of which %d are reserved for superusers and %d for pg_use_reserved_connections.",
					 MaxConnections, CG_SUPERUSER_RESERVED(),
					 CG_RESERVED_CONNECTIONS());
}

/*
 * cg_check_natts: a function's declared row has the columns the caller
 * fills (it serves one version of the SQL declaration per C symbol).
 */
void
cg_check_natts(TupleDesc desc, int ncols, const char *function)
{
	if (desc->natts != ncols)
		elog(ERROR, "conngov.%s() is declared with %d columns, expected %d",
			 function, desc->natts, ncols);
}

/*
 * cg_headroom: the server's figures.  A login takes a free slot first and
 * is refused when fewer than the reserved number remain, so a non-exempt
 * role can make (free - reserved) more logins.
 */
static void
cg_headroom(CgHeadroom *h)
{
	int			nfree = cg_free_procs();
	int			nreserved;

	h->max_connections = MaxConnections;
	h->superuser_reserved = CG_SUPERUSER_RESERVED();
	h->reserved = CG_RESERVED_CONNECTIONS();
	nreserved = h->superuser_reserved + h->reserved;
	h->normal_slots = cg_normal_slots();
	h->normal_free = Max(nfree - nreserved, 0);
	h->normal_in_use = h->normal_slots - h->normal_free;
	h->reserved_free = Min(nfree, nreserved);
	h->reserved_in_use = nreserved - h->reserved_free;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	h->budgeted_total = cg_shared->set[cg_shared->active].budgeted_total;
	h->has_floors = cg_shared->has_floors;
	h->floors_sum = cg_shared->floors_sum;
	h->guaranteed_unused = (int) pg_atomic_read_u32(&cg_shared->floors_unused);
	LWLockRelease(cg_shared->lock);
	h->shared_free = Max(h->normal_free - h->guaranteed_unused, 0);
	h->oversubscribed = h->budgeted_total > h->normal_slots;
	h->status = cg_status((uint32) h->normal_in_use, h->normal_slots);
}

/*
 * conngov.headroom(): one row of server figures.  The 1.0 declaration has
 * 11 columns (conngov_headroom); 1.1 adds guaranteed_unused and
 * shared_free (conngov_headroom_1_1).
 */
#define CG_HEADROOM_COLS_1_0 11
#define CG_HEADROOM_COLS_1_1 13
static Datum
cg_headroom_row(FunctionCallInfo fcinfo, int ncols)
{
	TupleDesc	tupdesc;
	Datum		values[CG_HEADROOM_COLS_1_1];
	bool		nulls[CG_HEADROOM_COLS_1_1];
	CgHeadroom	h;
	int			j = 0;

	cg_require_shared_state();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	cg_check_natts(tupdesc, ncols, "headroom");

	cg_headroom(&h);
	memset(nulls, 0, sizeof(nulls));
	values[j++] = Int32GetDatum(h.max_connections);
	values[j++] = Int32GetDatum(h.superuser_reserved);
	values[j++] = Int32GetDatum(h.reserved);
	values[j++] = Int32GetDatum(h.normal_slots);
	values[j++] = Int32GetDatum(h.normal_in_use);
	values[j++] = Int32GetDatum(h.normal_free);
	values[j++] = Int32GetDatum(h.reserved_in_use);
	values[j++] = Int32GetDatum(h.reserved_free);
	values[j++] = Int64GetDatum(h.budgeted_total);
	values[j++] = BoolGetDatum(h.oversubscribed);
	values[j++] = CStringGetTextDatum(h.status);
	if (ncols >= CG_HEADROOM_COLS_1_1)
	{
		values[j++] = Int32GetDatum(h.guaranteed_unused);
		values[j++] = Int32GetDatum(h.shared_free);
	}
	Assert(j == ncols);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
conngov_headroom(PG_FUNCTION_ARGS)
{
	return cg_headroom_row(fcinfo, CG_HEADROOM_COLS_1_0);
}

Datum
conngov_headroom_1_1(PG_FUNCTION_ARGS)
{
	return cg_headroom_row(fcinfo, CG_HEADROOM_COLS_1_1);
}

/* ok and full < warning < critical < exhausted */
static int
cg_status_rank(const char *status)
{
	if (strcmp(status, "exhausted") == 0)
		return 3;
	if (strcmp(status, "critical") == 0)
		return 2;
	if (strcmp(status, "warning") == 0)
		return 1;
	return 0;
}

/*
 * cg_health_history: health()'s history check (1.2): what the usage
 * history holds, from which minute, and how many records were overwritten
 * before they were a day old (the ring holds less than a day of the
 * active budgets: raise conngov.history_size).  Informative: it never
 * degrades health.  Last in the list, so that the checks before it keep
 * their places.
 */
static void
cg_health_history(StringInfo buf)
{
	uint64		held;
	uint64		early;
	uint64		skipped;
	TimestampTz oldest;

	cg_history_figures(&held, &oldest, &early, &skipped);
	appendStringInfo(buf,
					 ", {\"name\": \"history\", \"status\": \"ok\", \"records\": " UINT64_FORMAT
					 ", \"history_size\": %d, \"oldest_minute\": ",
					 held, cg_history_size);
	if (oldest != 0)
		appendStringInfo(buf, "\"%s\"", timestamptz_to_str(oldest));
	else
		appendStringInfoString(buf, "null");
	appendStringInfo(buf, ", \"overwritten_early\": " UINT64_FORMAT
					 ", \"skipped_minutes\": " UINT64_FORMAT "}", early, skipped);
}

/*
 * conngov.health(): {"status": ..., "checks": [...]}, one check for the
 * server and one per budget.  ok and full (a budget at its limit with no
 * refusal in conngov.refusal_window) are healthy, warning and critical are
 * degraded, exhausted (refusals in the window) is unhealthy.  A budget of 0 connections blocks its
 * application on purpose: it is listed but does not make conngov
 * unhealthy.  Budgets not loaded yet (just after a start) are degraded,
 * and so is a load requested more than a second ago that has not
 * happened (1.2, the "loads" check).
 */
Datum
conngov_health(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	CgHeadroom	h;
	int			worst;
	int			i;
	int			n;
	CgLoadState state;
	CgUsageRow *rows;
	static const char *const overall[] = {"healthy", "degraded", "degraded", "unhealthy"};

	cg_require_shared_state();
	cg_headroom(&h);
	worst = cg_status_rank(h.status);

	/* the last row is the unbudgeted one: no check of its own */
	n = cg_copy_usage(&rows, &state) - 1;

	initStringInfo(&buf);
	appendStringInfo(&buf,
					 "[{\"name\": \"server\", \"status\": \"%s\", \"max_connections\": %d, "
					 "\"normal_slots\": %d, \"normal_in_use\": %d, \"normal_free\": %d, "
					 "\"reserved_in_use\": %d, \"reserved_free\": %d, "
					 "\"budgeted_total\": " INT64_FORMAT ", \"oversubscribed\": %s, "
					 "\"guaranteed_unused\": %d, \"shared_free\": %d}",
					 h.status, h.max_connections, h.normal_slots, h.normal_in_use,
					 h.normal_free, h.reserved_in_use, h.reserved_free,
					 h.budgeted_total, h.oversubscribed ? "true" : "false",
					 h.guaranteed_unused, h.shared_free);

	/*
	 * Floors (1.1): degraded when they no longer fit the server (a restart
	 * with fewer max_connections) or when a floor budget cannot reach its
	 * floor now (its unused floor is more than the free slots: exempt
	 * sessions took them, or the floor was set while they were in use).
	 */
	if (h.has_floors)
	{
		bool		fit = h.floors_sum <= h.normal_slots;
		bool		reachable = h.guaranteed_unused <= h.normal_free;

		appendStringInfo(&buf,
						 ", {\"name\": \"floors\", \"status\": \"%s\", \"floors_sum\": " INT64_FORMAT
						 ", \"normal_slots\": %d, \"guaranteed_unused\": %d, \"normal_free\": %d, "
						 "\"fit\": %s, \"reachable\": %s",
						 fit && reachable ? "ok" : "warning", h.floors_sum,
						 h.normal_slots, h.guaranteed_unused, h.normal_free,
						 fit ? "true" : "false", reachable ? "true" : "false");
		if (!fit)
			appendStringInfo(&buf, ", \"reason\": \"the floors of the enforce budgets add up to " INT64_FORMAT " connections, more than the %d normal slots\"",
							 h.floors_sum, h.normal_slots);
		else if (!reachable)
			appendStringInfo(&buf, ", \"reason\": \"%d guaranteed connections are unused but only %d normal slots are free\"",
							 h.guaranteed_unused, h.normal_free);
		appendStringInfoChar(&buf, '}');
		if (!fit || !reachable)
			worst = Max(worst, 1);
	}

	/* not loaded yet, or not loadable: nothing is enforced (degraded) */
	{
		static const char *const state_names[] = {
			[CG_STATE_UNLOADED] = "not_loaded",
			[CG_STATE_LOADED] = "loaded",
			[CG_STATE_NO_TABLE] = "no_table",
			[CG_STATE_UNTRUSTED] = "untrusted",
			[CG_STATE_FAILED] = "failed",
		};
		bool		ok = (state == CG_STATE_LOADED || state == CG_STATE_NO_TABLE);
		char		reason[CG_REASON_LEN];
		int			not_enforced;
		int			other;
		bool		standby;

		LWLockAcquire(cg_shared->lock, LW_SHARED);
		not_enforced = cg_shared->nbudgets_table - cg_shared->nbudgets;
		other = cg_shared->nbudgets_other;
		standby = cg_shared->loaded_standby;
		LWLockRelease(cg_shared->lock);
		/* rows beyond conngov.max_budgets are not enforced (degraded) */
		if (not_enforced > 0)
			ok = false;

		SpinLockAcquire(&cg_shared->mutex);
		strlcpy(reason, cg_shared->load_reason, sizeof(reason));
		SpinLockRelease(&cg_shared->mutex);

		appendStringInfo(&buf, ", {\"name\": \"budgets\", \"status\": \"%s\", \"loaded\": %s, \"budgets\": %d, \"state\": \"%s\"",
						 ok ? "ok" : "warning",
						 state == CG_STATE_UNLOADED ? "false" : "true", n,
						 state_names[state]);
		if (not_enforced > 0)
			appendStringInfo(&buf, ", \"not_enforced\": %d, \"max_budgets\": %d",
							 not_enforced, cg_max_budgets);
		/* 1.2: rows of the table for nodes of the other role (fleets) */
		if (other > 0)
			appendStringInfo(&buf, ", \"node_role\": \"%s\", \"for_other_role\": %d",
							 standby ? "standby" : "primary", other);
		if (reason[0] != '\0')
		{
			appendStringInfoString(&buf, ", \"reason\": ");
			escape_json(&buf, reason);
		}
		appendStringInfoChar(&buf, '}');
		if (!ok)
			worst = Max(worst, 1);
	}

	/* 1.2: a load requested and not done within a second (loader.c) */
	{
		bool		ok;

		cg_loader_health(&buf, &ok);
		if (!ok)
			worst = Max(worst, 1);
	}

	for (i = 0; i < n; i++)
	{
		const char *status = cg_budget_status(rows[i].total,
											  rows[i].max_connections,
											  rows[i].last_refused_at);

		appendStringInfoString(&buf, ", {\"name\": ");
		escape_json(&buf, psprintf("budget:%s", rows[i].name));
		appendStringInfoString(&buf, ", \"budget\": ");
		escape_json(&buf, rows[i].name);
		appendStringInfo(&buf,
						 ", \"status\": \"%s\", \"mode\": \"%s\", \"max_connections\": %d, "
						 "\"total\": %u, \"available\": %d, \"min_connections\": %d, "
						 "\"guaranteed_unused\": %d, \"waiting\": %u}",
						 status, rows[i].monitor ? "monitor" : "enforce",
						 rows[i].max_connections, rows[i].total,
						 Max(rows[i].max_connections - (int32) rows[i].total, 0),
						 rows[i].min_connections,
						 rows[i].monitor ? 0 :
						 Max(rows[i].min_connections - (int32) rows[i].total, 0),
						 rows[i].waiting);
		if (rows[i].max_connections > 0)
			worst = Max(worst, cg_status_rank(status));
	}
	cg_health_history(&buf);
	appendStringInfoChar(&buf, ']');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(
																	 psprintf("{\"status\": \"%s\", \"checks\": %s}",
																			  overall[worst], buf.data))));
}

/*
 * conngov.stats(): per-budget counters since the last reset_stats().  The
 * 1.0 declaration has 9 columns (conngov_stats); 1.1 adds
 * refused_for_floors, waited, wait_seconds_total and wait_timeouts
 * (conngov_stats_1_1); 1.2 adds refused_rate, paced and ended_lowered
 * (conngov_stats_1_2).
 */
#define CG_STATS_COLS_1_0 9
#define CG_STATS_COLS_1_1 13
#define CG_STATS_COLS_1_2 16
#define CG_STATS_NCOUNTERS 12
static Datum
cg_stats_rows(FunctionCallInfo fcinfo, int ncols)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	struct
	{
		char		name[NAMEDATALEN];
		uint64		v[CG_STATS_NCOUNTERS];
		uint32		peak;
		TimestampTz last_refused_at;
	}		   *rows;
	int			n;
	int			i;
	TimestampTz reset;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	cg_check_natts(rsinfo->setDesc, ncols, "stats");

	rows = palloc(sizeof(*rows) * Max(cg_max_budgets, 1));
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	n = cg_shared->nbudgets;
	SpinLockAcquire(&cg_shared->mutex);
	reset = cg_shared->stats_reset;
	SpinLockRelease(&cg_shared->mutex);
	for (i = 0; i < n; i++)
	{
		CgCounters *c = cg_counters(i);

		memcpy(rows[i].name, cg_budgets[i].name, NAMEDATALEN);
		rows[i].v[0] = pg_atomic_read_u64(&c->admitted);
		rows[i].v[1] = pg_atomic_read_u64(&c->refused);
		rows[i].v[2] = pg_atomic_read_u64(&c->would_refuse);
		rows[i].v[3] = pg_atomic_read_u64(&c->ended_idle);
		rows[i].v[4] = pg_atomic_read_u64(&c->would_end_idle);
		rows[i].v[5] = pg_atomic_read_u64(&c->refused_for_floors);
		rows[i].v[6] = pg_atomic_read_u64(&c->waited);
		rows[i].v[7] = pg_atomic_read_u64(&c->wait_us_total);
		rows[i].v[8] = pg_atomic_read_u64(&c->wait_timeouts);
		rows[i].v[9] = pg_atomic_read_u64(&c->refused_rate);
		rows[i].v[10] = pg_atomic_read_u64(&c->paced);
		rows[i].v[11] = pg_atomic_read_u64(&c->ended_lowered);
		rows[i].peak = pg_atomic_read_u32(&c->peak);
		rows[i].last_refused_at = (TimestampTz) pg_atomic_read_u64(&c->last_refused_at);
	}
	LWLockRelease(cg_shared->lock);

	for (i = 0; i < n; i++)
	{
		Datum		values[CG_STATS_COLS_1_2];
		bool		nulls[CG_STATS_COLS_1_2];
		int			j = 0;
		int			k;

		memset(nulls, 0, sizeof(nulls));
		values[j++] = CStringGetTextDatum(rows[i].name);
		for (k = 0; k < 5; k++)
			values[j++] = Int64GetDatum((int64) rows[i].v[k]);
		values[j++] = Int32GetDatum((int32) rows[i].peak);
		if (rows[i].last_refused_at != 0)
			values[j++] = TimestampTzGetDatum(rows[i].last_refused_at);
		else
			nulls[j++] = true;
		values[j++] = TimestampTzGetDatum(reset);
		if (ncols >= CG_STATS_COLS_1_1)
		{
			values[j++] = Int64GetDatum((int64) rows[i].v[5]);
			values[j++] = Int64GetDatum((int64) rows[i].v[6]);
			values[j++] = Float8GetDatum((double) rows[i].v[7] / 1000000.0);
			values[j++] = Int64GetDatum((int64) rows[i].v[8]);
		}
		if (ncols >= CG_STATS_COLS_1_2)
		{
			values[j++] = Int64GetDatum((int64) rows[i].v[9]);
			values[j++] = Int64GetDatum((int64) rows[i].v[10]);
			values[j++] = Int64GetDatum((int64) rows[i].v[11]);
		}
		Assert(j == ncols);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
conngov_stats(PG_FUNCTION_ARGS)
{
	return cg_stats_rows(fcinfo, CG_STATS_COLS_1_0);
}

Datum
conngov_stats_1_1(PG_FUNCTION_ARGS)
{
	return cg_stats_rows(fcinfo, CG_STATS_COLS_1_1);
}

Datum
conngov_stats_1_2(PG_FUNCTION_ARGS)
{
	return cg_stats_rows(fcinfo, CG_STATS_COLS_1_2);
}

/*
 * conngov.reset_stats(): zero the counters; each peak restarts at the
 * current total.  Totals, budgets and events are untouched.
 */
Datum
conngov_reset_stats(PG_FUNCTION_ARGS)
{
	int			i;

	cg_require_shared_state();

	/* atomics: shared is enough, and logins never wait for a reset */
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = -1; i < cg_shared->nbudgets; i++)
	{
		CgCounters *c = cg_counters(i < 0 ? CG_UNBUDGETED : i);

		pg_atomic_write_u32(&c->peak, pg_atomic_read_u32(&c->total));
		cg_zero_stats(c);
	}
	SpinLockAcquire(&cg_shared->mutex);
	cg_shared->stats_reset = GetCurrentTimestamp();
	SpinLockRelease(&cg_shared->mutex);
	LWLockRelease(cg_shared->lock);

	PG_RETURN_VOID();
}

static const char *
cg_event_kind_name(CgEventKind kind)
{
	switch (kind)
	{
		case CG_EVENT_REFUSED:
			return "refused";
		case CG_EVENT_WOULD_REFUSE:
			return "would_refuse";
		case CG_EVENT_ENDED_IDLE:
			return "ended_idle";
		case CG_EVENT_WOULD_END_IDLE:
			return "would_end_idle";
		case CG_EVENT_BUDGETS_RELOADED:
			return "budgets_reloaded";
		case CG_EVENT_REFUSED_FOR_FLOORS:
			return "refused_for_floors";
		case CG_EVENT_WOULD_REFUSE_FOR_FLOORS:
			return "would_refuse_for_floors";
		case CG_EVENT_WAITED:
			return "waited";
		case CG_EVENT_WAIT_TIMEOUT:
			return "wait_timeout";
		case CG_EVENT_REFUSED_RATE:
			return "refused_rate";
		case CG_EVENT_WOULD_REFUSE_RATE:
			return "would_refuse_rate";
		case CG_EVENT_PACED:
			return "paced";
		case CG_EVENT_ENDED_LOWERED:
			return "ended_lowered";
	}
	return "unknown";
}

/* Empty text is NULL in events(). */
static void
cg_put_text(Datum *values, bool *nulls, int j, const char *s)
{
	if (s[0] == '\0')
		nulls[j] = true;
	else
		values[j] = CStringGetTextDatum(s);
}

#define CG_EVENTS_COLS 9

/*
 * cg_put_event: one row of events().
 */
static void
cg_put_event(ReturnSetInfo *rsinfo, const CgEvent *ev, bool see_addr)
{
	Datum		values[CG_EVENTS_COLS];
	bool		nulls[CG_EVENTS_COLS];
	int			j = 0;

	memset(nulls, 0, sizeof(nulls));
	values[j++] = TimestampTzGetDatum(ev->at);
	values[j++] = CStringGetTextDatum(cg_event_kind_name(ev->kind));
	cg_put_text(values, nulls, j++, ev->budget);
	if (ev->pid != 0)
		values[j++] = Int32GetDatum(ev->pid);
	else
		nulls[j++] = true;
	cg_put_text(values, nulls, j++, ev->role_name);
	cg_put_text(values, nulls, j++, ev->database_name);
	cg_put_text(values, nulls, j++, ev->application_name);
	if (see_addr && ev->client_addr[0] != '\0' && ev->client_addr[0] != '[')
		values[j++] = DirectFunctionCall1(inet_in, CStringGetDatum(ev->client_addr));
	else
		nulls[j++] = true;
	cg_put_text(values, nulls, j++, ev->detail);
	Assert(j == CG_EVENTS_COLS);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * conngov.events(since): the ring's events, newest first, optionally only
 * those after "since".  client_addr only for pg_read_all_stats holders.
 *
 * The events that exist when the call starts are returned, newest first,
 * copied CG_EVENTS_BATCH at a time: the lock is held for one batch's copy
 * and never while rows are made, so neither the ring's size nor the
 * caller's memory (the tuplestore spills to disk past work_mem) grows the
 * time a writer waits.  The ring is in time order (cg_add_event stamps
 * under the lock), newest last.  Events overwritten while the call runs
 * (a ring smaller than the rate of events) are older than any copied: the
 * copy stops there, as it would have stopped at the ring's end.
 */
#define CG_EVENTS_BATCH 256
Datum
conngov_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		has_since = !PG_ARGISNULL(0);
	TimestampTz since = has_since ? PG_GETARG_TIMESTAMPTZ(0) : 0;
	bool		see_addr;
	CgEvent    *batch;
	uint64		k;				/* events with index < k remain to return */
	bool		done = false;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	see_addr = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	batch = palloc(sizeof(CgEvent) * CG_EVENTS_BATCH);

	LWLockAcquire(cg_shared->events_lock, LW_SHARED);
	k = cg_shared->event_next;
	LWLockRelease(cg_shared->events_lock);

	while (!done)
	{
		uint64		next;
		uint64		first;
		int			n = 0;
		int			i;

		CHECK_FOR_INTERRUPTS();
		LWLockAcquire(cg_shared->events_lock, LW_SHARED);
		next = cg_shared->event_next;
		first = next > (uint64) cg_event_capacity ? next - cg_event_capacity : 0;
		while (n < CG_EVENTS_BATCH && k > first)
		{
			const CgEvent *ev = &cg_events[(k - 1) % cg_event_capacity];

			if (has_since && ev->at <= since)
				break;
			batch[n++] = *ev;
			k--;
		}
		done = (n < CG_EVENTS_BATCH);
		LWLockRelease(cg_shared->events_lock);

		for (i = 0; i < n; i++)
			cg_put_event(rsinfo, &batch[i], see_addr);
	}
	pfree(batch);
	return (Datum) 0;
}
