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
 * The check runs twice.  Before the statement, for a clear message in the
 * usual case.  And after it, in the same transaction, on the schema the
 * extension actually got (pg_extension.extnamespace): the statement looks
 * the schema up again by name, so a role with CREATE on the database that
 * creates schema conngov between the two lookups (a CREATE SCHEMA / DROP
 * SCHEMA loop, or an event trigger at ddl_command_start) would otherwise
 * get the extension into its own schema.  The second check's ERROR rolls
 * the extension back with everything it created: no race can win.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "conngov.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * cg_check_namespace_owner: ERROR when schema nsp (if it still exists) is
 * owned by a role that is not a superuser.
 */
static void
cg_check_namespace_owner(Oid nsp)
{
	HeapTuple	tup;
	Oid			owner;
	char	   *nspname;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		return;
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	nspname = pstrdup(NameStr(((Form_pg_namespace) GETSTRUCT(tup))->nspname));
	ReleaseSysCache(tup);
	if (!superuser_arg(owner))
	{
		char	   *name = GetUserNameFromId(owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot create or update extension conngov: schema \"%s\" is owned by role \"%s\", which is not a superuser",
						nspname, name ? name : "?"),
				 errdetail("The owner of the schema could drop or replace the budgets table, and with it what conngov enforces."),
				 errhint("Drop the schema, or make a superuser its owner with ALTER SCHEMA %s OWNER TO, then try again.",
						 quote_identifier(nspname))));
	}
}

/*
 * cg_check_schema: before CREATE or ALTER EXTENSION conngov, ERROR when
 * schema conngov exists and a role that is not a superuser owns it.
 */
static void
cg_check_schema(void)
{
	Oid			nsp = get_namespace_oid("conngov", true);

	if (OidIsValid(nsp))
		cg_check_namespace_owner(nsp);
}

/*
 * cg_check_installed_schema: after CREATE EXTENSION conngov or ALTER
 * EXTENSION conngov UPDATE has run, in its transaction: ERROR when the
 * schema the extension actually lives in (pg_extension.extnamespace, read
 * with the catalog snapshot, which sees the statement's own rows) is owned
 * by a role that is not a superuser.  The ERROR rolls the statement back.
 */
static void
cg_check_installed_schema(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("conngov"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (OidIsValid(nsp))
		cg_check_namespace_owner(nsp);
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

	/* the schema it really got: the check above can be raced */
	if (!IsBinaryUpgrade &&
		((IsA(stmt, CreateExtensionStmt) &&
		  strcmp(((CreateExtensionStmt *) stmt)->extname, "conngov") == 0) ||
		 (IsA(stmt, AlterExtensionStmt) &&
		  strcmp(((AlterExtensionStmt *) stmt)->extname, "conngov") == 0)))
		cg_check_installed_schema();
}

void
cg_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cg_ProcessUtility;
}
