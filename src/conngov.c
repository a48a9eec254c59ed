/*-------------------------------------------------------------------------
 *
 * conngov.c
 *		Connection governance per application: module entry point.
 *
 * _PG_init reads like a table of contents: it refuses to run unless
 * preloaded, defines the settings, installs the shared-memory, login and
 * statement hooks and registers the background workers (the worker and
 * the loader).
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/conngov.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "compat.h"
#include "conngov.h"

CG_MODULE_MAGIC;

/*---- GUC variables ----*/
char	   *cg_database = NULL;
int			cg_mode = CG_MODE_ENFORCE;
char	   *cg_exempt_roles = NULL;
double		cg_warn_ratio = 0.8;
double		cg_critical_ratio = 0.9;
int			cg_max_budgets = 256;
int			cg_event_capacity = 1024;
int			cg_log_refusals = CG_LOG_REFUSALS_ON;
int			cg_ending_sqlstate = CG_ENDING_ADMIN;
int			cg_refusal_window = 60;
int			cg_commit_wait_timeout = 2000;

/* conngov.exempt_roles parsed: names separated by NULs, "" at the end */
const char *cg_exempt_list = NULL;

static const struct config_enum_entry cg_mode_options[] = {
	{"enforce", CG_MODE_ENFORCE, false},
	{"monitor", CG_MODE_MONITOR, false},
	{"off", CG_MODE_OFF, false},
	{NULL, 0, false}
};

/* on, off and sampled; the booleans of 1.0 are still accepted (hidden) */
static const struct config_enum_entry cg_log_refusals_options[] = {
	{"on", CG_LOG_REFUSALS_ON, false},
	{"off", CG_LOG_REFUSALS_OFF, false},
	{"sampled", CG_LOG_REFUSALS_SAMPLED, false},
	{"true", CG_LOG_REFUSALS_ON, true},
	{"false", CG_LOG_REFUSALS_OFF, true},
	{"yes", CG_LOG_REFUSALS_ON, true},
	{"no", CG_LOG_REFUSALS_OFF, true},
	{"1", CG_LOG_REFUSALS_ON, true},
	{"0", CG_LOG_REFUSALS_OFF, true},
	{NULL, 0, false}
};

static const struct config_enum_entry cg_ending_sqlstate_options[] = {
	{"admin", CG_ENDING_ADMIN, false},
	{"timeout", CG_ENDING_TIMEOUT, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/*
 * check_exempt_roles: conngov.exempt_roles must be a comma-separated list of
 * role names.  The names are not looked up here (the postmaster cannot read
 * catalogs); a name that is not a role exempts nobody, and the loader
 * warns about it (loader.c).
 */
static bool
check_exempt_roles(char **newval, void **extra, GucSource source)
{
	char	   *rawstring;
	List	   *elemlist;
	ListCell   *lc;
	char	   *list;
	char	   *p;

	rawstring = pstrdup(*newval);
	if (!SplitIdentifierString(rawstring, ',', &elemlist))
	{
		GUC_check_errdetail("List syntax is invalid: expected role names separated by commas.");
		pfree(rawstring);
		list_free(elemlist);
		return false;
	}

	/* GUC extra memory (see compat.h); the names fit in strlen + 2 */
	list = cg_guc_malloc(strlen(*newval) + 2);
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errdetail("Out of memory.");
		pfree(rawstring);
		list_free(elemlist);
		return false;
	}
	p = list;
	foreach(lc, elemlist)
	{
		const char *name = (const char *) lfirst(lc);

		strcpy(p, name);
		p += strlen(name) + 1;
	}
	*p = '\0';

	pfree(rawstring);
	list_free(elemlist);
	*extra = list;
	return true;
}

static void
assign_exempt_roles(const char *newval, void *extra)
{
	cg_exempt_list = (const char *) extra;
}

/*
 * check_ratio: conngov.warn_ratio and conngov.critical_ratio are fractions
 * of a budget, greater than 0 and at most 1.
 */
static bool
check_ratio(double *newval, void **extra, GucSource source)
{
	if (*newval <= 0.0 || *newval > 1.0)
	{
		GUC_check_errdetail("The ratio must be greater than 0 and at most 1.");
		return false;
	}
	return true;
}

static void
cg_define_gucs(void)
{
	DefineCustomStringVariable("conngov.database",
							   "Database that holds the conngov.budgets table.",
							   NULL,
							   &cg_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("conngov.mode",
							 "Whether conngov refuses logins and ends idle sessions (enforce), only records (monitor), or does nothing (off).",
							 NULL,
							 &cg_mode,
							 CG_MODE_ENFORCE,
							 cg_mode_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("conngov.exempt_roles",
							   "Comma-separated roles whose members are never refused or ended.",
							   NULL,
							   &cg_exempt_roles,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_exempt_roles, assign_exempt_roles, NULL);

	DefineCustomRealVariable("conngov.warn_ratio",
							 "Usage ratio at which a budget's status becomes warning.",
							 NULL,
							 &cg_warn_ratio,
							 0.8, 0.0, 1.0,
							 PGC_SIGHUP,
							 0,
							 check_ratio, NULL, NULL);

	DefineCustomRealVariable("conngov.critical_ratio",
							 "Usage ratio at which a budget's status becomes critical.",
							 NULL,
							 &cg_critical_ratio,
							 0.9, 0.0, 1.0,
							 PGC_SIGHUP,
							 0,
							 check_ratio, NULL, NULL);

	DefineCustomIntVariable("conngov.max_budgets",
							"Number of budgets shared memory can hold.",
							NULL,
							&cg_max_budgets,
							256, 1, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("conngov.event_capacity",
							"Number of events kept in shared memory.",
							NULL,
							&cg_event_capacity,
							1024, 16, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("conngov.log_refusals",
							 "Logs refused logins in the server log: each (on), none (off), or the first of a budget and then a count every 10 s (sampled).",
							 NULL,
							 &cg_log_refusals,
							 CG_LOG_REFUSALS_ON,
							 cg_log_refusals_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("conngov.ending_sqlstate",
							 "SQLSTATE of an idle ending: 57P01 like an administrator's termination (admin), or PostgreSQL's own idle timeouts 57P05 / 25P03 (timeout).",
							 NULL,
							 &cg_ending_sqlstate,
							 CG_ENDING_ADMIN,
							 cg_ending_sqlstate_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("conngov.refusal_window",
							"How long after a refused login a budget at its limit shows status exhausted rather than full.",
							NULL,
							&cg_refusal_window,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("conngov.commit_wait_timeout",
							"Longest time a COMMIT that changed conngov.budgets waits for the new budgets to be published (0: no wait).",
							NULL,
							&cg_commit_wait_timeout,
							2000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("conngov.history_size",
							"Number of usage history records (a budget's minute each) kept in shared memory.",
							NULL,
							&cg_history_size,
							144000, 0, 100000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("conngov");
}

/*
 * Module load callback.  conngov only works preloaded: its shared memory is
 * sized at postmaster start and its worker is registered there.  Loaded any
 * other way (a function call before preloading), it defines nothing and its
 * functions say it must be preloaded.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	cg_define_gucs();
	cg_shmem_init_hooks();
	cg_auth_init();
	cg_notify_init();
	cg_guard_init();
	cg_statements_init();
	/* pg_upgrade's servers (binary-upgrade mode) run no worker or loader */
	if (!IsBinaryUpgrade)
	{
		cg_register_worker();
		cg_register_loader();
	}
}
