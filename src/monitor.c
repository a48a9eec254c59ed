/*-------------------------------------------------------------------------
 *
 * monitor.c
 *		Monitoring functions: headroom(), health(), stats(), events() and
 *		reset_stats().
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
PG_FUNCTION_INFO_V1(conngov_health);
PG_FUNCTION_INFO_V1(conngov_stats);
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
 * cg_headroom: the server's figures.  A login takes a free slot first and
 * is refused when fewer than the reserved number remain, so a non-exempt
 * role can make (free - reserved) more logins.
 */
static void
cg_headroom(CgHeadroom *h)
{
	int			nfree = cg_free_procs();
	int			nreserved;
	int			i;

	h->max_connections = MaxConnections;
	h->superuser_reserved = CG_SUPERUSER_RESERVED();
	h->reserved = CG_RESERVED_CONNECTIONS();
	nreserved = h->superuser_reserved + h->reserved;
	h->normal_slots = cg_normal_slots();
	h->normal_free = Max(nfree - nreserved, 0);
	h->normal_in_use = h->normal_slots - h->normal_free;
	h->reserved_free = Min(nfree, nreserved);
	h->reserved_in_use = nreserved - h->reserved_free;

	h->budgeted_total = 0;
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_shared->nbudgets; i++)
		if (!cg_budgets[i].monitor)
			h->budgeted_total += cg_budgets[i].max_connections;
	LWLockRelease(cg_shared->lock);
	h->oversubscribed = h->budgeted_total > h->normal_slots;
	h->status = cg_status((uint32) h->normal_in_use, h->normal_slots);
}

/*
 * conngov.headroom(): one row of server figures.
 */
#define CG_HEADROOM_COLS 11
Datum
conngov_headroom(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[CG_HEADROOM_COLS];
	bool		nulls[CG_HEADROOM_COLS];
	CgHeadroom	h;
	int			j = 0;

	cg_require_shared_state();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

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
	Assert(j == CG_HEADROOM_COLS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
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
 * conngov.health(): {"status": ..., "checks": [...]}, one check for the
 * server and one per budget.  ok and full (a budget at its limit with no
 * refusal in conngov.refusal_window) are healthy, warning and critical are
 * degraded, exhausted (refusals in the window) is unhealthy.  A budget of 0 connections blocks its
 * application on purpose: it is listed but does not make conngov
 * unhealthy.  Budgets not loaded yet (just after a start) are degraded.
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
					 "\"budgeted_total\": " INT64_FORMAT ", \"oversubscribed\": %s}",
					 h.status, h.max_connections, h.normal_slots, h.normal_in_use,
					 h.normal_free, h.reserved_in_use, h.reserved_free,
					 h.budgeted_total, h.oversubscribed ? "true" : "false");

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

		SpinLockAcquire(&cg_shared->mutex);
		strlcpy(reason, cg_shared->load_reason, sizeof(reason));
		SpinLockRelease(&cg_shared->mutex);

		appendStringInfo(&buf, ", {\"name\": \"budgets\", \"status\": \"%s\", \"loaded\": %s, \"budgets\": %d, \"state\": \"%s\"",
						 ok ? "ok" : "warning",
						 state == CG_STATE_UNLOADED ? "false" : "true", n,
						 state_names[state]);
		if (reason[0] != '\0')
		{
			appendStringInfoString(&buf, ", \"reason\": ");
			escape_json(&buf, reason);
		}
		appendStringInfoChar(&buf, '}');
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
						 "\"total\": %u, \"available\": %d}",
						 status, rows[i].monitor ? "monitor" : "enforce",
						 rows[i].max_connections, rows[i].total,
						 Max(rows[i].max_connections - (int32) rows[i].total, 0));
		if (rows[i].max_connections > 0)
			worst = Max(worst, cg_status_rank(status));
	}
	appendStringInfoChar(&buf, ']');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(
																	 psprintf("{\"status\": \"%s\", \"checks\": %s}",
																			  overall[worst], buf.data))));
}

/*
 * conngov.stats(): per-budget counters since the last reset_stats().
 */
#define CG_STATS_COLS 9
Datum
conngov_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	struct
	{
		char		name[NAMEDATALEN];
		uint64		v[5];
		uint32		peak;
		TimestampTz last_refused_at;
	}		   *rows;
	int			n;
	int			i;
	TimestampTz reset;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);

	rows = palloc(sizeof(*rows) * Max(cg_max_budgets, 1));
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	n = cg_shared->nbudgets;
	reset = cg_shared->stats_reset;
	for (i = 0; i < n; i++)
	{
		CgCounters *c = &cg_budgets[i].c;

		memcpy(rows[i].name, cg_budgets[i].name, NAMEDATALEN);
		rows[i].v[0] = pg_atomic_read_u64(&c->admitted);
		rows[i].v[1] = pg_atomic_read_u64(&c->refused);
		rows[i].v[2] = pg_atomic_read_u64(&c->would_refuse);
		rows[i].v[3] = pg_atomic_read_u64(&c->ended_idle);
		rows[i].v[4] = pg_atomic_read_u64(&c->would_end_idle);
		rows[i].peak = pg_atomic_read_u32(&c->peak);
		rows[i].last_refused_at = (TimestampTz) pg_atomic_read_u64(&c->last_refused_at);
	}
	LWLockRelease(cg_shared->lock);

	for (i = 0; i < n; i++)
	{
		Datum		values[CG_STATS_COLS];
		bool		nulls[CG_STATS_COLS];
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
		Assert(j == CG_STATS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
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

	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);
	for (i = -1; i < cg_shared->nbudgets; i++)
	{
		CgCounters *c = (i < 0) ? &cg_shared->unbudgeted : &cg_budgets[i].c;

		pg_atomic_write_u32(&c->peak, pg_atomic_read_u32(&c->total));
		pg_atomic_write_u64(&c->admitted, 0);
		pg_atomic_write_u64(&c->refused, 0);
		pg_atomic_write_u64(&c->would_refuse, 0);
		pg_atomic_write_u64(&c->ended_idle, 0);
		pg_atomic_write_u64(&c->would_end_idle, 0);
		pg_atomic_write_u64(&c->last_refused_at, 0);
	}
	cg_shared->stats_reset = GetCurrentTimestamp();
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

/*
 * conngov.events(since): the ring's events, newest first, optionally only
 * those after "since".  client_addr only for pg_read_all_stats holders.
 */
#define CG_EVENTS_COLS 9
Datum
conngov_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		has_since = !PG_ARGISNULL(0);
	TimestampTz since = has_since ? PG_GETARG_TIMESTAMPTZ(0) : 0;
	bool		see_addr;
	CgEvent    *events;
	uint64		next;
	uint64		first;
	int			n;
	int			i;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	see_addr = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	/*
	 * Count first, then copy only the events returned: the ring is in time
	 * order (cg_add_event stamps under the lock), newest last.
	 */
	LWLockAcquire(cg_shared->events_lock, LW_SHARED);
	next = cg_shared->event_next;
	first = next > (uint64) cg_event_capacity ? next - cg_event_capacity : 0;
	for (n = 0; (uint64) n < next - first; n++)
	{
		if (has_since &&
			cg_events[(next - 1 - n) % cg_event_capacity].at <= since)
			break;
	}
	events = palloc(sizeof(CgEvent) * Max(n, 1));
	for (i = 0; i < n; i++)
		events[i] = cg_events[(next - 1 - i) % cg_event_capacity];
	LWLockRelease(cg_shared->events_lock);

	for (i = 0; i < n; i++)
	{
		Datum		values[CG_EVENTS_COLS];
		bool		nulls[CG_EVENTS_COLS];
		const CgEvent *ev = &events[i];
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
	return (Datum) 0;
}
