/*-------------------------------------------------------------------------
 *
 * guard.c
 *		The utility hook: what a role that is not a superuser must not be
 *		able to do to conngov's own objects (own the schema they live in),
 *		and the utility commands the loader must make way for or hear of.
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
 * The loader stays connected to conngov.database (loader.c).  DROP
 * DATABASE, ALTER DATABASE ... RENAME or SET TABLESPACE and CREATE
 * DATABASE ... TEMPLATE of that database refuse to run while another
 * session uses it, so before
 * the command runs, when the caller could run it (it owns the database, or
 * may copy it as a template), the loader is asked to leave and awaited
 * (cg_loader_leave()), and keeps away until the command is over
 * (cg_loader_back()); a role that could not run the command cannot make
 * the loader leave.  ALTER DATABASE ... ALLOW_CONNECTIONS false needs
 * nothing: the loader connects past it.
 *
 * COMMIT PREPARED: the transaction that changed the table was prepared,
 * so its commit callback never ran; a COMMIT PREPARED in conngov.database
 * asks for a load once it is done (as DDL does: at most twice a second,
 * so a loop of them by any role cannot keep the loader busy).  Nothing is
 * remembered at PREPARE, so this holds across a restart too.  On a
 * standby the loader re-reads every second anyway.
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
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
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

/*
 * cg_whole_database_op: the database a DROP DATABASE, ALTER DATABASE ...
 * RENAME, ALTER DATABASE ... SET TABLESPACE or CREATE DATABASE ...
 * TEMPLATE needs nobody else in (NULL for any other statement); *template
 * for the last.
 */
static const char *
cg_whole_database_op(Node *stmt, bool *template)
{
	*template = false;
	if (IsA(stmt, DropdbStmt))
		return ((DropdbStmt *) stmt)->dbname;
	if (IsA(stmt, RenameStmt) &&
		((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		return ((RenameStmt *) stmt)->subname;
	if (IsA(stmt, AlterDatabaseStmt))
	{
		ListCell   *lc;

		/* SET TABLESPACE moves the files: nobody else may be in it */
		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				return ((AlterDatabaseStmt *) stmt)->dbname;
		return NULL;
	}
	if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *opt = (DefElem *) lfirst(lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
			{
				*template = true;
				return defGetString(opt);
			}
		}
	}
	return NULL;
}

/*
 * cg_may_run_whole_database_op: whether the current user could run the
 * operation on database dboid: its owner (or a member of the owner's
 * role, a superuser included), or for a copy, a role with CREATEDB when
 * the database is marked as a template.  Core checks again; this only
 * keeps a role that could not run it from making the loader leave.
 */
static bool
cg_may_run_whole_database_op(Oid dboid, bool template)
{
	HeapTuple	tup;
	Oid			owner;
	bool		is_template;
	bool		createdb = false;

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_database) GETSTRUCT(tup))->datdba;
	is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
	ReleaseSysCache(tup);
	if (has_privs_of_role(GetUserId(), owner))
		return true;
	if (!template || !is_template)
		return false;
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (HeapTupleIsValid(tup))
	{
		createdb = ((Form_pg_authid) GETSTRUCT(tup))->rolcreatedb;
		ReleaseSysCache(tup);
	}
	return createdb;
}

/*
 * cg_make_way: before a whole-database operation on conngov.database that
 * the caller may run, have the loader leave the database.  Returns
 * whether it did: the caller then calls cg_loader_back() once the command
 * is over (it holds the database's lock until its commit, so a loader
 * that connects after that waits for the commit).
 */
static bool
cg_make_way(Node *stmt)
{
	bool		template;
	const char *dbname = cg_whole_database_op(stmt, &template);
	Oid			dboid;

	if (dbname == NULL || strcmp(dbname, cg_database) != 0)
		return false;
	dboid = get_database_oid(dbname, true);
	if (!OidIsValid(dboid) || !cg_may_run_whole_database_op(dboid, template))
		return false;
	/* a cancel while waiting for the loader gives it back too */
	PG_TRY();
	{
		cg_loader_leave();
	}
	PG_CATCH();
	{
		cg_loader_back();
		PG_RE_THROW();
	}
	PG_END_TRY();
	return true;
}

/*
 * cg_committed_prepared: after a COMMIT PREPARED in conngov.database, ask
 * for a load (the prepared transaction may have changed the table).
 */
static void
cg_committed_prepared(Node *stmt)
{
	char	   *db;

	if (!IsA(stmt, TransactionStmt) ||
		((TransactionStmt *) stmt)->kind != TRANS_STMT_COMMIT_PREPARED)
		return;
	db = get_database_name(MyDatabaseId);
	if (db != NULL && strcmp(db, cg_database) == 0)
		(void) cg_request_load(false);
}

/* The next ProcessUtility hook, or the standard one. */
static void
cg_next_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * cg_is_conngov_extension_stmt: CREATE EXTENSION conngov or ALTER
 * EXTENSION conngov (UPDATE), outside binary-upgrade mode.
 */
static bool
cg_is_conngov_extension_stmt(Node *stmt)
{
	return !IsBinaryUpgrade &&
		((IsA(stmt, CreateExtensionStmt) &&
		  strcmp(((CreateExtensionStmt *) stmt)->extname, "conngov") == 0) ||
		 (IsA(stmt, AlterExtensionStmt) &&
		  strcmp(((AlterExtensionStmt *) stmt)->extname, "conngov") == 0));
}

static void
cg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		extension = cg_is_conngov_extension_stmt(stmt);

	if (extension)
		cg_check_schema();
	if (!IsBinaryUpgrade && cg_shared != NULL && cg_make_way(stmt))
	{
		/* the loader keeps away while the command runs (loader.c) */
		PG_TRY();
		{
			cg_next_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								   params, queryEnv, dest, qc);
		}
		PG_FINALLY();
		{
			cg_loader_back();
		}
		PG_END_TRY();
		return;
	}

	cg_next_ProcessUtility(pstmt, queryString, readOnlyTree, context,
						   params, queryEnv, dest, qc);
	if (cg_shared != NULL)
		cg_committed_prepared(stmt);
	/* the schema it really got: the check above can be raced */
	if (extension)
		cg_check_installed_schema();
}

void
cg_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cg_ProcessUtility;
}
