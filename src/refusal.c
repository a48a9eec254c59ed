/*-------------------------------------------------------------------------
 *
 * refusal.c
 *		What a refused or ended client reads, and what the server log
 *		keeps: the refusal FATALs (budget, floors), sampled refusal
 *		logging, and the idle ending's own message.
 *
 * The message texts are the SPEC's, and an API: libpq clients cannot see
 * the SQLSTATE of a refused login and match on the text.  The
 * emit_log_hook hides refusals from the server log as
 * conngov.log_refusals says, and turns PostgreSQL's "terminating
 * connection due to administrator command" into the idle ending's own
 * message when, and only when, the worker marked this session before its
 * SIGTERM.
 *
 * Lock rules: cg_shared->mutex (spinlock) for the sampled-logging table
 * only, a few instructions; the ending's mark is read with a read barrier
 * after end_pid, no lock.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/refusal.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Set just before a refusal that conngov.log_refusals keeps from the log. */
static bool cg_hide_refusal = false;

/* conngov.log_refusals = sampled: one line per budget per this period. */
#define CG_REFUSAL_LOG_PERIOD_MS	10000

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
 * SPEC's wording; "extra" (or NULL) is one more sentence of DETAIL (how
 * long it waited, how many wait).  The message text is an API: libpq
 * clients cannot see the SQLSTATE of a refused login and match on it.  It
 * is the one server log line, as conngov.log_refusals says.
 */
void
cg_refuse(const CgBudget *b, uint32 in_use, const char *extra)
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
			 errdetail_plural("Budget \"%s\" allows %d connection (%s); %u %s in use.%s%s",
							  "Budget \"%s\" allows %d connections (%s); %u %s in use.%s%s",
							  b->max_connections,
							  b->name, b->max_connections, filter, in_use,
							  in_use == 1 ? "is" : "are",
							  extra ? " " : "", extra ? extra : ""),
			 errhint("Close idle connections of this application, or raise conngov.budgets.max_connections for \"%s\".",
					 b->name)));
}

/*
 * cg_refuse_for_floors: the FATAL of a login refused for the others'
 * floors, with the SPEC's wording.
 */
void
cg_refuse_for_floors(const char *budget_name, const CgFloorRefusal *fr)
{
	StringInfoData list;
	int			shown = Min(fr->n, CG_FLOOR_NAMES);
	int			i;

	initStringInfo(&list);
	for (i = 0; i < shown; i++)
	{
		if (i > 0)
			appendStringInfoString(&list,
								   (i == shown - 1 && fr->n <= shown) ? " and " : ", ");
		appendStringInfo(&list, "\"%s\" (%u unused of %d guaranteed)",
						 fr->b[i].name, fr->b[i].unused,
						 fr->b[i].min_connections);
	}
	if (fr->n > shown)
		appendStringInfo(&list, " and %d other budgets", fr->n - shown);

	cg_hide_refusal = !cg_log_this_refusal(budget_name);
	/* fr->n is 0 only past the CG_MAX_FLOOR_LIST floor budgets listed */
	ereport(FATAL,
			(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
			 errmsg("connection budget \"%s\": the free connection slots are guaranteed to other budgets",
					budget_name),
			 fr->n == 0 ?
			 errdetail("%d normal connection %s free; other budgets are guaranteed them.",
					   fr->nfree, fr->nfree == 1 ? "slot is" : "slots are") :
			 errdetail("%d normal connection %s free; %s %s %s guaranteed them.",
					   fr->nfree, fr->nfree == 1 ? "slot is" : "slots are",
					   fr->n == 1 ? "budget" : "budgets", list.data,
					   fr->n == 1 ? "is" : "are"),
			 errhint("Lower min_connections of those budgets or raise max_connections of the server.")));
}

/*
 * cg_refuse_login: the FATAL of a login (or late name) refused with
 * verdict v, its DETAIL saying why when it is more than the limit: how
 * long it waited, that max_waiting already wait, that there was no room
 * to wait, and, for a login that came without a name, that it was judged
 * by the empty name and what to do about it.
 */
void
cg_refuse_login(const CgLogin *l, CgVerdict v)
{
	StringInfoData extra;

	if (v == CG_REFUSED_FLOORS)
		cg_refuse_for_floors(l->budget_name, &l->fr);

	initStringInfo(&extra);
	if (v == CG_QUEUE_FULL)
		appendStringInfo(&extra, "%u %s for a place already, the budget's max_waiting.",
						 l->waiting, l->waiting == 1 ? "login waits" : "logins wait");
	else if (v == CG_NO_ROOM)
	{
		if (l->waited)
			appendStringInfo(&extra, "The login waited %.1f s for a place; then ",
							 l->waited_s);
		appendStringInfo(&extra, "%s no room to wait: a waiting login holds a server connection slot, and %d %s free, fewer than the %d kept for superusers, reserved connections and other budgets' guaranteed slots.",
						 l->waited ? "there was" : "There was",
						 l->room_free, l->room_free == 1 ? "is" : "are",
						 l->room_needed);
	}
	else if (l->waited)
		appendStringInfo(&extra, "The login waited %.1f s for a place.",
						 l->waited_s);
	if (l->unnamed && !l->late)
		appendStringInfo(&extra, "%sThe login sent no application_name, so it is judged by the empty name; send the name at login (for pgjdbc, assumeMinServerVersion=9.0 in the URL).",
						 extra.len > 0 ? " " : "");
	cg_refuse(&l->hit, l->in_use, extra.len > 0 ? extra.data : NULL);
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
cg_refusal_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = cg_emit_log;
}
