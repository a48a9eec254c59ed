/*-------------------------------------------------------------------------
 *
 * budgets.c
 *		Reading conngov.budgets, compiling it into shared memory, and the
 *		small helpers that turn a budget's figures into words.
 *
 * Only a loader process (loader.c) reads the table, in a transaction of
 * its own, so it sees committed rows only.  It runs no SQL: it checks that
 * conngov.budgets is the table CREATE EXTENSION conngov made (a member of
 * the extension, owned with its schema by a superuser, every column of the
 * expected type) and then scans the heap directly.  Nothing a non-superuser
 * can create (operators, functions, casts, look-alike tables in any schema)
 * takes part, no index is opened, and the table's lock is taken only if it
 * is free.  Sorting (priority, then name in byte order) and the interval
 * arithmetic happen here in C.
 *
 * A table of extension version 1.0 (the 1.1 library before ALTER EXTENSION
 * conngov UPDATE) lacks min_connections, login_wait and max_waiting: its
 * rows load with their defaults (no floor, no wait).  A 1.0 or 1.1 table
 * lacks login_rate, login_burst and on_lower: no rate limit, refuse_new;
 * and node_role and max_share: every budget applies on every node, with
 * its max_connections.
 *
 * A budget whose node_role is not this node's (a standby is a node in
 * recovery) is left out of the load, as if the row were not there; the
 * loader loads again when the node is promoted.  max_share makes the
 * limit on this node least(max_connections, floor(max_share * normal
 * slots)), and the floor and the default max_waiting follow that limit.
 *
 * Publishing fills the inactive budget set with no lock held, and takes the
 * lock exclusively only to make it the active one: a few words.  Counters
 * live in slots that follow a budget by name, so a budget that stays keeps
 * its sessions' total without recounting.  Sessions that the new budgets
 * match differently are moved one by one with compare-and-swap, counted
 * in their new budget before the swap (so no new budget starts short of
 * the sessions it already has) and given back by their old one after.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/budgets.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

/* The columns the loader reads, by name, and the type each must have. */
typedef enum CgColumnId
{
	CG_COL_NAME,
	CG_COL_PATTERN,
	CG_COL_ROLE,
	CG_COL_DATABASE,
	CG_COL_MAX_CONNECTIONS,
	CG_COL_MODE,
	CG_COL_IDLE_TIMEOUT,
	CG_COL_IDLE_IN_XACT_TIMEOUT,
	CG_COL_IDLE_KEEP,
	CG_COL_PRIORITY,
	CG_COL_MIN_CONNECTIONS,
	CG_COL_LOGIN_WAIT,
	CG_COL_MAX_WAITING,
	CG_COL_LOGIN_RATE,
	CG_COL_LOGIN_BURST,
	CG_COL_ON_LOWER,
	CG_COL_NODE_ROLE,
	CG_COL_MAX_SHARE,
	CG_NCOLUMNS
} CgColumnId;

/*
 * "later" marks the columns added after 1.0: a table of an older version
 * (the new library before ALTER EXTENSION conngov UPDATE) lacks them, and
 * its rows load with the column's default.  A column that is there must
 * have the type, whatever the version.
 */
static const struct
{
	const char *name;
	Oid			type;
	bool		later;
}			cg_columns[CG_NCOLUMNS] = {
	{"name", TEXTOID, false},
	{"application_pattern", TEXTOID, false},
	{"role_name", NAMEOID, false},
	{"database_name", NAMEOID, false},
	{"max_connections", INT4OID, false},
	{"mode", TEXTOID, false},
	{"idle_timeout", INTERVALOID, false},
	{"idle_in_transaction_timeout", INTERVALOID, false},
	{"idle_keep", INT4OID, false},
	{"priority", INT4OID, false},
	{"min_connections", INT4OID, true},
	{"login_wait", INTERVALOID, true},
	{"max_waiting", INT4OID, true},
	{"login_rate", FLOAT4OID, true},	/* 1.2 */
	{"login_burst", INT4OID, true}, /* 1.2 */
	{"on_lower", TEXTOID, true},	/* 1.2 */
	{"node_role", TEXTOID, true},	/* 1.2 */
	{"max_share", FLOAT4OID, true}, /* 1.2 */
};

/*
 * cg_interval_to_ms: an idle timeout in milliseconds, rounded up (a
 * positive interval below 1 ms is 1 ms, never 0 = never), with months of
 * 30 days as PostgreSQL compares intervals.  Anything longer than
 * CG_MAX_TIMEOUT_MS, infinity included, is capped there: never overflows.
 * 0 for an interval that is not positive (the table refuses those).
 */
int64
cg_interval_to_ms(const Interval *iv)
{
	int64		days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	int64		us;

	if (pg_mul_s64_overflow(days, USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, iv->time, &us))
		return days > 0 ? CG_MAX_TIMEOUT_MS : 0;
	if (us <= 0)
		return 0;
	if (us / 1000 >= CG_MAX_TIMEOUT_MS)
		return CG_MAX_TIMEOUT_MS;
	return (us + 999) / 1000;
}

/* Copy a text or name column into a NAMEDATALEN buffer ("" for NULL). */
static void
cg_copy_text(char *dst, TupleTableSlot *slot, AttrNumber att, Oid type)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	if (isnull)
		dst[0] = '\0';
	else if (type == NAMEOID)
		strlcpy(dst, NameStr(*DatumGetName(d)), NAMEDATALEN);
	else
		text_to_cstring_buffer(DatumGetTextPP(d), dst, NAMEDATALEN);
}

/* An integer column, or dflt when NULL or absent (a 1.0 table). */
static int32
cg_get_int4_or(TupleTableSlot *slot, AttrNumber att, int32 dflt)
{
	bool		isnull;
	Datum		d;

	if (att == InvalidAttrNumber)
		return dflt;
	d = slot_getattr(slot, att, &isnull);
	return isnull ? dflt : DatumGetInt32(d);
}

static int32
cg_get_int4(TupleTableSlot *slot, AttrNumber att)
{
	return cg_get_int4_or(slot, att, 0);
}

/* A real column, 0 when NULL or absent (a 1.0 or 1.1 table). */
static float4
cg_get_float4(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d;

	if (att == InvalidAttrNumber)
		return 0;
	d = slot_getattr(slot, att, &isnull);
	return isnull ? 0 : DatumGetFloat4(d);
}

/* An interval column in ms, 0 when NULL or absent (a 1.0 table). */
static int64
cg_get_timeout(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d;

	if (att == InvalidAttrNumber)
		return 0;
	d = slot_getattr(slot, att, &isnull);
	return isnull ? 0 : cg_interval_to_ms(DatumGetIntervalP(d));
}

/* A role's name for a message, even when it is gone. */
static const char *
cg_role_name(Oid roleid)
{
	char	   *name = GetUserNameFromId(roleid, true);

	return name ? name : psprintf("%u", roleid);
}

/* Matching order: priority, then name in byte order (COLLATE "C"). */
static int
cg_budget_order_cmp(const void *a, const void *b)
{
	const CgBudget *ba = (const CgBudget *) a;
	const CgBudget *bb = (const CgBudget *) b;

	if (ba->priority != bb->priority)
		return ba->priority < bb->priority ? -1 : 1;
	return strcmp(ba->name, bb->name);
}

/*
 * cg_untrusted_reason: why the relation relid (locked by the caller) is
 * not the conngov.budgets that CREATE EXTENSION conngov made, or cannot be
 * trusted (a role that is not a superuser owns its database or schema),
 * or NULL when it is.  Fills atts[] with each column's number.
 */
static const char *
cg_untrusted_reason(Relation rel, AttrNumber *atts)
{
	Oid			ext = get_extension_oid("conngov", true);
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	nsptup;
	Oid			nspowner;
	int			c;

	HeapTuple	dbtup;
	Oid			datdba;

	/*
	 * The owner of conngov.database can rename, drop or reconfigure it
	 * (settings for every session in it, who may connect): only a
	 * superuser may hold that, as for the schema.
	 */
	dbtup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (!HeapTupleIsValid(dbtup))
		return psprintf("database \"%s\" is gone", cg_database);
	datdba = ((Form_pg_database) GETSTRUCT(dbtup))->datdba;
	ReleaseSysCache(dbtup);
	if (!superuser_arg(datdba))
		return psprintf("database \"%s\" is owned by role \"%s\", which is not a superuser",
						cg_database, cg_role_name(datdba));

	if (!OidIsValid(ext) ||
		getExtensionOfObject(RelationRelationId, RelationGetRelid(rel)) != ext)
		return psprintf("table conngov.budgets in database \"%s\" was not created by CREATE EXTENSION conngov",
						cg_database);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return psprintf("conngov.budgets in database \"%s\" is not a plain table",
						cg_database);
	if (!superuser_arg(rel->rd_rel->relowner))
		return psprintf("table conngov.budgets in database \"%s\" is owned by role \"%s\", which is not a superuser",
						cg_database,
						cg_role_name(rel->rd_rel->relowner));
	nsptup = SearchSysCache1(NAMESPACEOID,
							 ObjectIdGetDatum(RelationGetNamespace(rel)));
	if (!HeapTupleIsValid(nsptup))
		return "schema conngov is gone";
	nspowner = ((Form_pg_namespace) GETSTRUCT(nsptup))->nspowner;
	ReleaseSysCache(nsptup);
	if (!superuser_arg(nspowner))
		return psprintf("schema conngov in database \"%s\" is owned by role \"%s\", which is not a superuser",
						cg_database, cg_role_name(nspowner));

	for (c = 0; c < CG_NCOLUMNS; c++)
	{
		int			i;

		atts[c] = InvalidAttrNumber;
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);

			if (!a->attisdropped &&
				strcmp(NameStr(a->attname), cg_columns[c].name) == 0)
			{
				if (a->atttypid != cg_columns[c].type)
					return psprintf("column \"%s\" of conngov.budgets has type %s, not %s",
									cg_columns[c].name,
									format_type_be(a->atttypid),
									format_type_be(cg_columns[c].type));
				atts[c] = a->attnum;
				break;
			}
		}
		if (atts[c] == InvalidAttrNumber && !cg_columns[c].later)
			return psprintf("table conngov.budgets has no column \"%s\"",
							cg_columns[c].name);
	}
	return NULL;
}

/*
 * cg_share_limit: a budget's limit on this node: max_connections, or less
 * when max_share (> 0, at most 1; 0 = unused) gives fewer of the node's
 * normal slots.  The table's checks compute the same in SQL.
 */
static int32
cg_share_limit(int32 max_connections, float4 max_share)
{
	double		share;

	if (!(max_share > 0))
		return max_connections;
	share = floor((double) max_share * cg_normal_slots());
	return (share < max_connections) ? (int32) share : max_connections;
}

/*
 * cg_for_this_node: whether a row's node_role (absent in a 1.0 or 1.1
 * table: any) applies on this node.
 */
static bool
cg_for_this_node(TupleTableSlot *slot, AttrNumber att, bool standby)
{
	char		role[NAMEDATALEN];

	if (att == InvalidAttrNumber)
		return true;
	cg_copy_text(role, slot, att, TEXTOID);
	if (strcmp(role, "primary") == 0)
		return !standby;
	if (strcmp(role, "standby") == 0)
		return standby;
	return true;
}

/*
 * cg_read_rows: every row of the table that applies on this node (a
 * standby when standby), in matching order (palloc'd, *nrows of them;
 * *other gets the rows for nodes of the other role).  Caller holds
 * AccessShareLock on rel and an active snapshot.  A plain heap scan: no
 * index, no SQL.
 */
static CgBudget *
cg_read_rows(Relation rel, const AttrNumber *atts, bool standby,
			 int *nrows, int *other)
{
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int			cap = 64;
	int			n = 0;
	CgBudget   *rows = palloc(sizeof(CgBudget) * cap);

	*other = 0;
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CgBudget   *b;
		char		mode[NAMEDATALEN];

		CHECK_FOR_INTERRUPTS();
		if (!cg_for_this_node(slot, atts[CG_COL_NODE_ROLE], standby))
		{
			(*other)++;
			continue;
		}
		if (n == cap)
		{
			if (cap >= (int) (MaxAllocSize / sizeof(CgBudget) / 2))
				break;			/* cannot happen with max_budgets' range */
			cap *= 2;
			rows = repalloc(rows, sizeof(CgBudget) * cap);
		}
		b = &rows[n++];
		memset(b, 0, sizeof(CgBudget));
		cg_copy_text(b->name, slot, atts[CG_COL_NAME], TEXTOID);
		cg_copy_text(b->pattern, slot, atts[CG_COL_PATTERN], TEXTOID);
		cg_copy_text(b->role_name, slot, atts[CG_COL_ROLE], NAMEOID);
		cg_copy_text(b->database_name, slot, atts[CG_COL_DATABASE], NAMEOID);
		/* 1.2: max_share makes it this node's share, if smaller */
		b->max_connections =
			cg_share_limit(Max(cg_get_int4(slot, atts[CG_COL_MAX_CONNECTIONS]), 0),
						   cg_get_float4(slot, atts[CG_COL_MAX_SHARE]));
		cg_copy_text(mode, slot, atts[CG_COL_MODE], TEXTOID);
		b->monitor = (strcmp(mode, "monitor") == 0);
		b->idle_timeout_ms = cg_get_timeout(slot, atts[CG_COL_IDLE_TIMEOUT]);
		b->idle_in_xact_timeout_ms =
			cg_get_timeout(slot, atts[CG_COL_IDLE_IN_XACT_TIMEOUT]);
		b->idle_keep = Max(cg_get_int4(slot, atts[CG_COL_IDLE_KEEP]), 0);
		b->priority = cg_get_int4(slot, atts[CG_COL_PRIORITY]);
		/* 1.1 (the table's checks keep them in range; clamp anyway) */
		b->min_connections = Min(Max(cg_get_int4(slot, atts[CG_COL_MIN_CONNECTIONS]), 0),
								 b->max_connections);
		b->login_wait_ms = cg_get_timeout(slot, atts[CG_COL_LOGIN_WAIT]);
		b->max_waiting = Max(cg_get_int4_or(slot, atts[CG_COL_MAX_WAITING],
											cg_default_max_waiting(b->max_connections)), 0);
		/* 1.2 (absent or NULL: no rate limit, refuse_new) */
		b->login_rate = cg_get_float4(slot, atts[CG_COL_LOGIN_RATE]);
		b->login_burst = cg_get_int4(slot, atts[CG_COL_LOGIN_BURST]);
		cg_rate_compile(b);
		if (atts[CG_COL_ON_LOWER] != InvalidAttrNumber)
		{
			cg_copy_text(mode, slot, atts[CG_COL_ON_LOWER], TEXTOID);
			b->on_lower_end_idle = (strcmp(mode, "end_idle") == 0);
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);

	qsort(rows, n, sizeof(CgBudget), cg_budget_order_cmp);
	*nrows = n;
	return rows;
}

/*
 * cg_warn_floors: the floors of the enforce budgets no longer fit the
 * server's normal slots (the table refuses such a change, but
 * max_connections may have been lowered since, or a standby have fewer
 * slots).  They are enforced anyway, as far as slots go; health() is
 * degraded meanwhile.
 */
static void
cg_warn_floors(const CgBudget *rows, int n)
{
	int64		sum = 0;
	int			slots = cg_normal_slots();
	int			i;

	for (i = 0; i < n; i++)
		if (!rows[i].monitor)
			sum += rows[i].min_connections;
	if (sum > slots)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("connection budget floors do not fit the server: enforce budgets guarantee " INT64_FORMAT " connections, " INT64_FORMAT " more than the server's %d normal slots",
						sum, sum - slots, slots),
				 cg_errdetail_slots(),
				 errhint("Lower min_connections of some budgets or raise max_connections of the server.")));
}

/*
 * cg_cancel_intruders: cancel the requests of non-superusers that wait for
 * a lock on the budgets table (relid) that conflicts with ACCESS SHARE;
 * returns how many were cancelled.  Such a request can only fail: every
 * command that takes that lock checks ownership of the table, which a
 * superuser holds, but some (CREATE RULE, for one) check it only once they
 * have the lock.  While one waits, PostgreSQL queues every later request
 * behind it, the loader's too, so that a role with no privilege at all,
 * holding ACCESS SHARE in an open transaction (parse analysis takes it
 * before any privilege check) while another queues, would stop every
 * load.  A superuser's waiting DDL is the DBA's own and is left alone.
 * The lock table is copied (GetLockStatusData): only when a load found
 * the table locked.  The session user is judged (PGPROC.roleId): a
 * superuser's session that SET ROLE is the DBA's.
 */
static int
cg_cancel_intruders(Oid relid)
{
	LockData   *data = GetLockStatusData();
	int			cancelled = 0;
	int			i;

	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *l = &data->locks[i];
		PGPROC	   *proc;
		const char *role;

		if (l->locktag.locktag_type != LOCKTAG_RELATION ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field2 != relid ||
			l->waitLockMode == NoLock ||
			!DoLockModesConflict(l->waitLockMode, AccessShareLock))
			continue;
		proc = BackendPidGetProc(l->pid);
		if (proc == NULL || superuser_arg(proc->roleId))
			continue;
		/* as pg_cancel_backend() does: the backend leads its group */
		if (kill(-l->pid, SIGINT) == 0 || kill(l->pid, SIGINT) == 0)
		{
			role = GetUserNameFromId(proc->roleId, true);
			ereport(LOG,
					(errmsg("conngov cancelled the lock request of process %d on conngov.budgets", l->pid),
					 errdetail("Role \"%s\" waited for a lock that no role but a superuser can take, and every load of the budgets queued behind it.",
							   role ? role : "?")));
			cancelled++;
		}
	}
	return cancelled;
}

/*
 * cg_lock_past_intruders: the budgets table was locked: cancel the
 * non-superusers' waiting requests that hold the queue (if any) and try
 * the lock again, for CG_INTRUDER_WAIT_MS at most, without waiting on it.
 * True when the lock is held.
 */
#define CG_INTRUDER_WAIT_MS		100
static bool
cg_lock_past_intruders(Oid relid)
{
	int			ms;

	if (cg_cancel_intruders(relid) == 0)
		return false;
	for (ms = 0; ms < CG_INTRUDER_WAIT_MS; ms++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		if (ConditionalLockRelationOid(relid, AccessShareLock))
			return true;
	}
	return false;
}

/*
 * cg_budgets_relid: conngov.budgets' OID, InvalidOid when there is none
 * (whatever table it is: the loader's invalidation filter, loader.c).
 * In a transaction.
 */
Oid
cg_budgets_relid(void)
{
	Oid			nsp = get_namespace_oid("conngov", true);

	return OidIsValid(nsp) ? get_relname_relid("budgets", nsp) : InvalidOid;
}

/*
 * cg_load_budgets: read the table and publish it.  Caller (the loader) is
 * in a transaction with an active snapshot, connected to conngov.database.
 * Returns CG_LOAD_LOCKED, publishing nothing, when the table is locked
 * (ALTER TABLE, DROP EXTENSION in progress ...): the loader never waits on
 * it, the worker tries again shortly.  Otherwise publishes what it found
 * (nothing, with the reason in *reason, when there is no table or not the
 * extension's) and returns CG_LOAD_DONE.  When the table holds more rows
 * than conngov.max_budgets, the first ones in matching order are loaded.
 * standby: whether this node is in recovery (read by the caller before
 * the load, so that a promotion during it makes the loader load again).
 */
CgLoadResult
cg_load_budgets(char *reason, bool standby)
{
	Oid			relid = cg_budgets_relid();
	Relation	rel;
	AttrNumber	atts[CG_NCOLUMNS];
	const char *why;
	CgBudget   *rows;
	int			nrows;
	int			other;
	int			n;

	reason[0] = '\0';
	if (OidIsValid(relid) &&
		!ConditionalLockRelationOid(relid, AccessShareLock) &&
		!cg_lock_past_intruders(relid))
		return CG_LOAD_LOCKED;
	/* dropped between the lookup and the lock? */
	if (OidIsValid(relid) &&
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		UnlockRelationOid(relid, AccessShareLock);
		relid = InvalidOid;
	}
	if (!OidIsValid(relid))
	{
		snprintf(reason, CG_REASON_LEN,
				 "table conngov.budgets does not exist in database \"%s\"",
				 cg_database);
		cg_publish_budgets(NULL, 0, 0, standby, 0, CG_STATE_NO_TABLE, reason);
		return CG_LOAD_DONE;
	}

	rel = table_open(relid, NoLock);
	why = cg_untrusted_reason(rel, atts);
	if (why != NULL)
	{
		table_close(rel, NoLock);
		strlcpy(reason, why, CG_REASON_LEN);
		cg_publish_budgets(NULL, 0, 0, standby, 0, CG_STATE_UNTRUSTED, reason);
		return CG_LOAD_DONE;
	}
	rows = cg_read_rows(rel, atts, standby, &nrows, &other);
	table_close(rel, NoLock);

	n = Min(nrows, cg_max_budgets);
	/* the WARNINGs once per change, not at every load (a standby's) */
	if (!cg_publish_budgets(rows, n, nrows, standby, other,
							CG_STATE_LOADED, ""))
	{
		pfree(rows);
		return CG_LOAD_DONE;
	}
	cg_warn_floors(rows, n);
	if (nrows > n)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("conngov loaded %d of %d budgets: conngov.max_budgets is %d",
						n, nrows, cg_max_budgets),
				 errdetail("The last %d budgets in matching order (priority, name) are not enforced.",
						   nrows - n),
				 errhint("Raise conngov.max_budgets and restart the server.")));
	pfree(rows);
	return CG_LOAD_DONE;
}

/* A planned move of a session to another counter slot. */
typedef struct CgMove
{
	int			session;
	int			from;
	int			to;
} CgMove;

/*
 * cg_session_target: the slot session s would be charged to under budget
 * set k (the active one, or the one being built), or CG_NOT_CHARGED when
 * it is not a counted session.  *from gets what it is charged to now.
 */
static int
cg_session_target(CgSession *s, int k, int *from)
{
	int			budget;
	char		name[NAMEDATALEN];

	if (s->pid == 0)
		return CG_NOT_CHARGED;
	pg_read_barrier();
	*from = cg_session_charge(s);
	if (*from == CG_NOT_CHARGED)
		return CG_NOT_CHARGED;
	cg_session_name(s, name);
	budget = cg_match_indexed(&cg_indexes[k], cg_shared->set[k].prefix_lengths,
							  name, s->role_name, s->database_name);
	return budget == CG_UNBUDGETED ? CG_UNBUDGETED :
		cg_budget_sets[k][budget].slot;
}

/*
 * cg_rematch_sessions: charge every counted session to what the active
 * budgets match, moving those charged elsewhere (to a budget that is gone,
 * or one that a new budget now comes before).  Under the shared lock, so
 * that the set does not change and no exit is half done; a pass over the
 * session slots with one indexed match each.  Publishers hold
 * publish_lock, so the active set is theirs to read.
 */
static void
cg_rematch_sessions(void)
{
	int			i;

	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nsessions; i++)
	{
		int			from;
		int			to = cg_session_target(&cg_sessions[i], cg_shared->active,
										   &from);

		if (to != CG_NOT_CHARGED && to != from)
			(void) cg_session_move(&cg_sessions[i], from, to);
	}
	LWLockRelease(cg_shared->lock);
}

/*
 * cg_assign_slots: give each budget of set k a counter slot: the slot that
 * holds its name, whether a budget of the active set has it or it was
 * retired by an earlier publish (a failed or empty load, a deleted row:
 * the budget comes back with its counters and stats), else a free one,
 * with counters at 0: a slot never named first, then a retired one (its
 * old name is forgotten).  A slot is free when no budget of the active set
 * has it; sessions were moved off retired slots by the publish that
 * retired them, and the barrier in cg_publish_budgets waited out any exit
 * still giving one back, so a retired slot's total is 0.
 */
static void
cg_assign_slots(int k, int nbudgets)
{
	int			active = 1 - k;
	CgBudget   *new = cg_budget_sets[k];
	HTAB	   *names = NULL;
	HASHCTL		ctl;
	int			next_unnamed = 0;
	int			next_retired = 0;
	int			i;

	for (i = 0; i < cg_nslots; i++)
		cg_slots[i].index[k] = -1;
	if (nbudgets == 0)
		return;					/* every slot keeps its name and counters */

	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(int) + NAMEDATALEN;
	ctl.hcxt = CurrentMemoryContext;
	names = hash_create("conngov slot names", Max(nbudgets, 16), &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < cg_nslots; i++)
	{
		if (cg_slots[i].name[0] != '\0')
		{
			char	   *e = hash_search(names, cg_slots[i].name, HASH_ENTER,
										NULL);

			*(int *) (e + NAMEDATALEN) = i;
		}
	}

	/* budgets whose name a slot holds keep it (set k is still unused) */
	for (i = 0; i < nbudgets; i++)
	{
		char	   *e = hash_search(names, new[i].name, HASH_FIND, NULL);

		new[i].slot = -1;
		if (e != NULL)
		{
			new[i].slot = *(int *) (e + NAMEDATALEN);
			cg_slots[new[i].slot].index[k] = i;
		}
	}
	/* the others: a free slot, never named first, then a retired one */
	for (i = 0; i < nbudgets; i++)
	{
		CgBudget   *b = &new[i];
		CgSlot	   *slot;

		if (b->slot >= 0)
			continue;
		while (next_unnamed < cg_nslots &&
			   (cg_slots[next_unnamed].name[0] != '\0' ||
				cg_slots[next_unnamed].index[active] >= 0 ||
				cg_slots[next_unnamed].index[k] >= 0))
			next_unnamed++;
		if (next_unnamed < cg_nslots)
			b->slot = next_unnamed;
		else
		{
			/* 2 x max_budgets slots: a free one is always there */
			while (cg_slots[next_retired].index[active] >= 0 ||
				   cg_slots[next_retired].index[k] >= 0)
				next_retired++;
			b->slot = next_retired;
		}
		slot = &cg_slots[b->slot];
		memcpy(slot->name, b->name, NAMEDATALEN);
		cg_reset_counters(&slot->c);
		slot->index[k] = i;
	}
	hash_destroy(names);
}

/*
 * cg_publish_budgets: replace the shared budgets by budgets[0..nbudgets)
 * (their policy part only), in state with reason (why nothing is enforced,
 * "" when loaded), for a node in recovery or not (standby), nother rows
 * of the table left out for their node_role.  Called by the loader, and by the worker when a load
 * failed; publish_lock keeps publishers one at a time.  Returns false when
 * nothing changed (a standby re-reads every second).
 *
 * The steps, none of them with the lock held exclusively but the flip:
 * 1. wait out exits still releasing a slot retired by the last publish
 *    (an empty exclusive acquire), and move sessions a publisher that
 *    died half-way left on retired slots;
 * 2. build the inactive set: policies, counter slots by name, the index;
 * 3. count each session the new set matches differently in its new slot;
 * 4. flip, and with it (still exclusive, work in the number of waiting
 *    logins and of floor budgets) re-match the waiting logins and
 *    recompute the unused floors from the totals;
 * 5. move those sessions, then re-match all once more for logins that
 *    came between 3 and 4; wake the waiting logins.
 * Nothing from 3 to 5 can fail (no allocation, no interrupt check), so no
 * pre-charge is left behind.  Between 4 and the end of 5 a moved session is
 * counted in both budgets: a total is never short, only briefly one too
 * high (and a floor it moves into briefly reads one more used).
 */
bool
cg_publish_budgets(CgBudget *budgets, int nbudgets, int nrows,
				   bool standby, int nother,
				   CgLoadState state, const char *reason)
{
	int			k;
	CgBudgetSet *set;
	CgMove	   *moves;
	int			nmoves = 0;
	int		   *woken;
	int			nwoken;
	bool	   *lowered;
	int			i;
	uint32		in_use;
	char		detail[128];

	LWLockAcquire(cg_shared->publish_lock, LW_EXCLUSIVE);

	SpinLockAcquire(&cg_shared->mutex);
	strlcpy(cg_shared->load_reason, reason, CG_REASON_LEN);
	SpinLockRelease(&cg_shared->mutex);

	/* nothing changed: keep all as is (the active set is ours to read) */
	k = cg_shared->active;
	if (cg_shared->state == state && cg_shared->set[k].nbudgets == nbudgets &&
		cg_shared->set[k].nrows == nrows &&
		cg_shared->loaded_standby == standby &&
		cg_shared->nbudgets_other == nother)
	{
		for (i = 0; i < nbudgets; i++)
			if (memcmp(&cg_budget_sets[k][i], &budgets[i],
					   offsetof(CgBudget, slot)) != 0)
				break;
		if (i == nbudgets)
		{
			LWLockRelease(cg_shared->publish_lock);
			return false;
		}
	}

	/* 1 */
	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);
	LWLockRelease(cg_shared->lock);
	cg_rematch_sessions();

	/* 2 */
	k = 1 - cg_shared->active;
	set = &cg_shared->set[k];
	for (i = 0; i < nbudgets; i++)
		memcpy(&cg_budget_sets[k][i], &budgets[i], offsetof(CgBudget, slot));
	cg_assign_slots(k, nbudgets);
	cg_index_build(&cg_indexes[k], nbudgets, &set->prefix_lengths);
	set->nbudgets = nbudgets;
	set->nrows = nrows;
	set->min_timeout_ms = 0;
	set->budgeted_total = 0;
	set->nfloors = 0;
	set->floors_sum = 0;
	for (i = 0; i < nbudgets; i++)
	{
		int64		t1 = budgets[i].idle_timeout_ms;
		int64		t2 = budgets[i].idle_in_xact_timeout_ms;

		if (!budgets[i].monitor)
			set->budgeted_total += budgets[i].max_connections;
		if (!budgets[i].monitor && budgets[i].min_connections > 0)
		{
			cg_indexes[k].floors[set->nfloors++] = i;
			set->floors_sum += budgets[i].min_connections;
		}
		if (t1 > 0 && (set->min_timeout_ms == 0 || t1 < set->min_timeout_ms))
			set->min_timeout_ms = t1;
		if (t2 > 0 && (set->min_timeout_ms == 0 || t2 < set->min_timeout_ms))
			set->min_timeout_ms = t2;
	}

	/*
	 * Budgets whose limit this publish lowers, with on_lower = end_idle:
	 * kept budgets (the slot's budget in the active set has the name) whose
	 * max_connections goes down.
	 */
	lowered = palloc0(sizeof(bool) * Max(nbudgets, 1));
	for (i = 0; i < nbudgets; i++)
	{
		const CgBudget *b = &cg_budget_sets[k][i];
		int			was = cg_slots[b->slot].index[1 - k];

		lowered[i] = (b->on_lower_end_idle && !b->monitor && was >= 0 &&
					  b->max_connections <
					  cg_budget_sets[1 - k][was].max_connections);
	}

	/* 3 (allocations first: nothing from here to 5 may fail) */
	moves = palloc(sizeof(CgMove) * cg_nsessions);
	woken = palloc(sizeof(int) * cg_nsessions);
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < cg_nsessions; i++)
	{
		int			from;
		int			to = cg_session_target(&cg_sessions[i], k, &from);

		if (to == CG_NOT_CHARGED || to == from)
			continue;
		(void) cg_charge_slot(to, -1, &in_use);
		moves[nmoves].session = i;
		moves[nmoves].from = from;
		moves[nmoves].to = to;
		nmoves++;
	}
	LWLockRelease(cg_shared->lock);

	/* 4 */
	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);
	cg_shared->active = k;
	cg_shared->nbudgets = nbudgets;
	cg_shared->nbudgets_table = nrows;
	cg_shared->loaded_standby = standby;
	cg_shared->nbudgets_other = nother;
	cg_shared->state = state;
	cg_shared->loaded_at = GetCurrentTimestamp();
	nwoken = cg_publish_waiters(woken);
	cg_publish_aggregates();
	LWLockRelease(cg_shared->lock);

	/* 5 */
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	for (i = 0; i < nmoves; i++)
	{
		CgMove	   *m = &moves[i];
		uint32		expected = (uint32) m->from;

		/* counted in "to" already: swap, then give back one of the two */
		if (pg_atomic_compare_exchange_u32(&cg_sessions[m->session].charge,
										   &expected, (uint32) m->to))
			(void) cg_release_slot(m->from);
		else
			(void) cg_release_slot(m->to);
	}
	LWLockRelease(cg_shared->lock);
	pfree(moves);
	cg_rematch_sessions();
	/* on_lower = end_idle: the worker ends idle sessions above the limit */
	for (i = 0; i < nbudgets; i++)
		if (lowered[i])
			cg_note_lowered(cg_budget_sets[k][i].slot);
	/* places may have freed, and waiters may match other budgets now */
	cg_wake_waiters();
	/* waiters moved to another budget (or to none) look again */
	for (i = 0; i < nwoken; i++)
		cg_wake_session(woken[i]);
	pfree(woken);
	pfree(lowered);

	LWLockRelease(cg_shared->publish_lock);

	if (nother > 0)
		snprintf(detail, sizeof(detail),
				 "%d budgets loaded, %d left out for the %s (this node is %s)",
				 nbudgets, nother, standby ? "primary" : "standbys",
				 standby ? "a standby" : "the primary");
	else
		snprintf(detail, sizeof(detail), "%d budgets loaded", nbudgets);
	cg_add_event(CG_EVENT_BUDGETS_RELOADED, NULL, MyProcPid, NULL, NULL, NULL,
				 NULL, detail);
	return true;
}

/*
 * cg_status: ok / warning / critical / exhausted for a budget's figures.
 * A budget with no place left (including max_connections = 0) is
 * exhausted.  If warn_ratio is set above critical_ratio, critical wins.
 */
const char *
cg_status(uint32 total, int32 max_connections)
{
	double		ratio;

	if ((int64) total >= (int64) max_connections)
		return "exhausted";
	ratio = (double) total / (double) max_connections;
	if (ratio >= cg_critical_ratio)
		return "critical";
	if (ratio >= cg_warn_ratio)
		return "warning";
	return "ok";
}

/*
 * cg_budget_status: a budget's status.  "exhausted" means logins were
 * refused within conngov.refusal_window, or the budget is over its limit
 * (exempt sessions, a lowered limit, a monitor budget: the next login
 * would be refused); "full" is a budget exactly at its limit with no
 * refusal in the window, the intended state of a fixed-size pool on an
 * exactly sized budget; below the limit, cg_status's ratios.
 */
const char *
cg_budget_status(uint32 total, int32 max_connections,
				 TimestampTz last_refused_at)
{
	if (last_refused_at != 0 &&
		!TimestampDifferenceExceeds(last_refused_at, GetCurrentTimestamp(),
									cg_refusal_window * 1000))
		return "exhausted";
	if ((int64) total > (int64) max_connections)
		return "exhausted";
	if ((int64) total == (int64) max_connections)
		return "full";
	return cg_status(total, max_connections);
}
