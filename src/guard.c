/*-------------------------------------------------------------------------
 *
 * guard.c
 *		What a role that is not a superuser must not be able to do to
 *		conngov's own objects: own the schema they live in.
 *
 * CREATE EXTENSION conngov uses an existing schema "conngov" silently.  If
 * a role that is not a superuser owns it, that role can drop or replace
 * the budgets table (and with it what conngov enforces), so the creation
 * (and ALTER EXTENSION conngov UPDATE) is refused, naming the owner.  The
 * loader checks the same at every load for installations made before.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/syscache.h"

#include "compat.h"
#include "conngov.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * cg_check_schema: ERROR when schema conngov exists and a role that is not
 * a superuser owns it.
 */
static void
cg_check_schema(void)
{
	Oid			nsp = get_namespace_oid("conngov", true);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(nsp))
		return;
	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		return;
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	if (!superuser_arg(owner))
	{
		char	   *name = GetUserNameFromId(owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot create or update extension conngov: schema \"conngov\" is owned by role \"%s\", which is not a superuser",
						name ? name : "?"),
				 errdetail("The owner of the schema could drop or replace the budgets table, and with it what conngov enforces."),
				 errhint("Drop the schema, or make a superuser its owner with ALTER SCHEMA conngov OWNER TO, then try again.")));
	}
}

static void
cg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (!IsBinaryUpgrade &&
		((IsA(stmt, CreateExtensionStmt) &&
		  strcmp(((CreateExtensionStmt *) stmt)->extname, "conngov") == 0) ||
		 (IsA(stmt, AlterExtensionStmt) &&
		  strcmp(((AlterExtensionStmt *) stmt)->extname, "conngov") == 0)))
		cg_check_schema();

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
cg_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cg_ProcessUtility;
}
