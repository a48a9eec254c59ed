/*-------------------------------------------------------------------------
 *
 * statements.c
 *		What a session's statements tell conngov: a late application_name
 *		(late naming) and LISTEN.
 *
 * Names after login.  A login that came with a name keeps it: naming is
 * closed at login (auth.c).  A login without one (pgjdbc unless the URL
 * has assumeMinServerVersion=9.0, PgBouncer without an alias) has naming
 * open, and naming.c re-charges it, before the statement runs:
 *  - at the start (post parse analysis) of its first top-level statement,
 *    when application_name is set already: role or database defaults gave
 *    it, applied after the login hook; that name is final, naming closes;
 *  - else at the start of its first top-level statement that is not a SET
 *    (pgjdbc sends "SET extra_float_digits = 3" and then
 *    "SET application_name = ..."), by the name the SETs left;
 *  - and at the end of that statement, for a set_config() in it; then
 *    naming closes and later names change nothing.
 * A statement is top-level when no other statement of ours is running
 * (cg_nesting, kept across ERRORs like pg_stat_statements' nesting level),
 * so a function's inner queries neither check nor close.  A top-level
 * statement that fails closes naming too: what it set is rolled back.  A
 * re-charge that waits (login_wait) and is cancelled leaves naming open:
 * its statement never ran.  Once closed, the hooks only pass through.
 *
 * LISTEN: a session that listens is idle by design, so it publishes that in
 * its session slot and the idle sweep spares it.  LISTEN marks the session
 * (even if its transaction later aborts: that errs on sparing it);
 * UNLISTEN * and DISCARD ALL clear the mark.  UNLISTEN of one channel keeps
 * it, since other channels may remain.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/statements.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "tcop/utility.h"
#include "utils/guc.h"

#include "compat.h"
#include "conngov.h"

/* From login to the end of the first top-level statement that is not a SET. */
bool		cg_naming_open = false;
/* Until the first top-level statement starts (names from defaults). */
bool		cg_naming_first = false;

/* Statements of ours running (0: the next one to start is top-level). */
static int	cg_nesting = 0;

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/*
 * cg_statement_done: a top-level statement ended; is_set when it was a
 * SET (or RESET), which keeps naming open.
 */
static void
cg_statement_done(bool is_set)
{
	if (!cg_naming_open)
		return;
	/* closed first: an error in the re-charge must not leave it open */
	if (!is_set)
		cg_naming_open = false;
	cg_recharge_if_renamed();
}

/*
 * cg_post_parse_analyze: a statement is about to run (simple protocol) or
 * is being prepared (extended protocol's Parse): at top level, while
 * naming is open, re-charge the session by the name it has before the
 * statement runs (see the file header).
 */
static void
cg_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	bool		is_set;

	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (!cg_naming_open || cg_nesting > 0)
		return;

	is_set = query->commandType == CMD_UTILITY &&
		query->utilityStmt != NULL &&
		IsA(query->utilityStmt, VariableSetStmt);
	if (cg_naming_first)
	{
		cg_naming_first = false;
		if (application_name != NULL && application_name[0] != '\0')
		{
			/* from role or database defaults: the login's name */
			cg_naming_open = false;
			cg_recharge_if_renamed();
			return;
		}
	}
	if (!is_set)
		cg_recharge_if_renamed();
}

/* Publish whether this session listens (see the file header). */
static void
cg_set_listening(bool on)
{
	CgSession  *s = cg_my_session();

	if (s != NULL)
		s->listening = on;
}

static void
cg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		top = (cg_nesting == 0);
	bool		is_set = IsA(stmt, VariableSetStmt);
	bool		listen = IsA(stmt, ListenStmt);
	bool		unlisten_all =
		(IsA(stmt, UnlistenStmt) &&
		 ((UnlistenStmt *) stmt)->conditionname == NULL) ||
		(IsA(stmt, DiscardStmt) &&
		 ((DiscardStmt *) stmt)->target == DISCARD_ALL);

	if (!cg_naming_open)
	{
		/* naming is closed for good: no nesting to keep */
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	else
	{
		cg_nesting++;
		PG_TRY();
		{
			if (prev_ProcessUtility)
				prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
			else
				standard_ProcessUtility(pstmt, queryString, readOnlyTree,
										context, params, queryEnv, dest, qc);
		}
		PG_CATCH();
		{
			cg_nesting--;
			if (top && !is_set)
				cg_naming_open = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
		cg_nesting--;
	}

	if (listen)
		cg_set_listening(true);
	else if (unlisten_all)
		cg_set_listening(false);
	if (top)
		cg_statement_done(is_set);
}

static void
cg_ExecutorRun(CG_EXECUTOR_RUN_ARGS)
{
	bool		top = (cg_nesting == 0);

	if (!cg_naming_open)
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(CG_EXECUTOR_RUN_CALL);
		else
			standard_ExecutorRun(CG_EXECUTOR_RUN_CALL);
		return;
	}

	cg_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(CG_EXECUTOR_RUN_CALL);
		else
			standard_ExecutorRun(CG_EXECUTOR_RUN_CALL);
	}
	PG_CATCH();
	{
		cg_nesting--;
		if (top)
			cg_naming_open = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	cg_nesting--;
}

static void
cg_ExecutorFinish(QueryDesc *queryDesc)
{
	bool		top = (cg_nesting == 0);

	if (!cg_naming_open)
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
		return;
	}

	cg_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_CATCH();
	{
		cg_nesting--;
		if (top)
			cg_naming_open = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	cg_nesting--;
}

/*
 * cg_ExecutorEnd: a query that is not a utility statement ended; at top
 * level that is the end of a statement that is not a SET (SELECT
 * set_config('application_name', ...) included).  Never a re-charge
 * outside a transaction in progress: an executor shut down by an abort
 * (PostgreSQL skips that for portals, others may not) ended a statement
 * that failed, whose name is rolled back, and a wait there could not be
 * interrupted.
 */
static void
cg_ExecutorEnd(QueryDesc *queryDesc)
{
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);

	if (cg_naming_open && cg_nesting == 0)
	{
		if (IsTransactionState())
			cg_statement_done(false);
		else
			cg_naming_open = false;
	}
}

void
cg_statements_init(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = cg_post_parse_analyze;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cg_ProcessUtility;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = cg_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = cg_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = cg_ExecutorEnd;
}
