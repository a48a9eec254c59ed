/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every difference between the PostgreSQL major versions conngov
 *		supports (15, 17, 18), and nothing else.
 *
 * Each difference is one macro or static inline function with a comment
 * naming the versions.  No other file tests PG_VERSION_NUM.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNGOV_COMPAT_H
#define CONNGOV_COMPAT_H

#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 150000
#error "conngov requires PostgreSQL 15 or later"
#endif

/*
 * 18 added PG_MODULE_MAGIC_EXT, which records the module's name and version
 * for pg_get_loaded_modules().
 */
#if PG_VERSION_NUM >= 180000
#define CG_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "conngov", .version = "1.2")
#else
#define CG_MODULE_MAGIC PG_MODULE_MAGIC
#endif

/*
 * The index of this backend's PGPROC: 17 made it MyProcNumber; before, it
 * was MyProc->pgprocno.
 */
#if PG_VERSION_NUM >= 170000
#define CG_MY_PROCNO()			MyProcNumber
#define CG_PROC_NUMBER(proc)	GetNumberFromPGProc(proc)
#else
#define CG_MY_PROCNO()			(MyProc->pgprocno)
#define CG_PROC_NUMBER(proc)	((proc)->pgprocno)
#endif

/*
 * The local copy of backend status entries: 17 renamed the accessor
 * pgstat_fetch_stat_local_beentry() to pgstat_get_local_beentry_by_index();
 * both take a 1-based index.
 */
#if PG_VERSION_NUM >= 170000
#define cg_local_beentry(i)		pgstat_get_local_beentry_by_index(i)
#else
#define cg_local_beentry(i)		pgstat_fetch_stat_local_beentry(i)
#endif

/*
 * Custom wait events (17+) show their own name in pg_stat_activity
 * ("ConngovMain" for the worker, "ConngovLoginWait" for a login waiting
 * for a place, "ConngovCommitWait" for a COMMIT waiting for its change to
 * be published); 15 only has the generic PG_WAIT_EXTENSION ("Extension").
 */
static inline uint32
cg_wait_event_named(uint32 *cache, const char *name)
{
#if PG_VERSION_NUM >= 170000
	if (*cache == 0)
		*cache = WaitEventExtensionNew(name);
	return *cache;
#else
	(void) cache;
	(void) name;
	return PG_WAIT_EXTENSION;
#endif
}

static inline uint32
cg_wait_event_main(void)
{
	static uint32 ev = 0;

	return cg_wait_event_named(&ev, "ConngovMain");
}

static inline uint32
cg_wait_event_login(void)
{
	static uint32 ev = 0;

	return cg_wait_event_named(&ev, "ConngovLoginWait");
}

static inline uint32
cg_wait_event_commit(void)
{
	static uint32 ev = 0;

	return cg_wait_event_named(&ev, "ConngovCommitWait");
}

/*
 * Whether this backend holds a lock in exactly this mode: 17 added the
 * "orstronger" argument to LockHeldByMe() (15 has it as a separate
 * LockOrStrongerHeldByMe()).
 */
#if PG_VERSION_NUM >= 170000
#define cg_lock_held_by_me(tag, mode)	LockHeldByMe((tag), (mode), false)
#else
#define cg_lock_held_by_me(tag, mode)	LockHeldByMe((tag), (mode))
#endif

/*
 * Reserved connections (16+): reserved_connections slots are kept for roles
 * with the privileges of pg_use_reserved_connections, who conngov never
 * refuses either.  On 15 neither exists: 0 slots and nobody holds it.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_authid_d.h"
#include "postmaster/postmaster.h"
#include "utils/acl.h"
#define CG_RESERVED_CONNECTIONS()	ReservedConnections
#define cg_has_reserved_privilege(roleid) \
	has_privs_of_role((roleid), ROLE_PG_USE_RESERVED_CONNECTIONS)
#else
#define CG_RESERVED_CONNECTIONS()	0
#define cg_has_reserved_privilege(roleid)	((void) (roleid), false)
#endif

/*
 * GUC "extra" data: 16 moved GUC memory into a memory context, so it must
 * come from guc_malloc(); 15 frees it with free().
 */
#if PG_VERSION_NUM >= 160000
#include "utils/guc.h"
#define cg_guc_malloc(size)	guc_malloc(LOG, (size))
#else
#define cg_guc_malloc(size)	malloc(size)
#endif

/*
 * superuser_reserved_connections: ReservedBackends before 16,
 * SuperuserReservedConnections from 16.
 */
#if PG_VERSION_NUM >= 160000
#define CG_SUPERUSER_RESERVED()	SuperuserReservedConnections
#else
#include "postmaster/postmaster.h"
#define CG_SUPERUSER_RESERVED()	ReservedBackends
#endif

/*
 * cg_free_procs: free PGPROCs of the regular pool, counted by PostgreSQL's
 * own HaveNFreeProcs(), which is what decides "remaining connection slots
 * are reserved".  16 returns the count (up to n); 15 only answers whether
 * there are at least n, so binary search for the largest such n.
 */
static inline int
cg_free_procs(void)
{
#if PG_VERSION_NUM >= 160000
	int			nfree = 0;

	(void) HaveNFreeProcs(MaxConnections, &nfree);
	return nfree;
#else
	int			lo = 0;
	int			hi = MaxConnections;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo + 1) / 2;

		if (HaveNFreeProcs(mid))
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
#endif
}

/*
 * cg_have_free_procs: whether at least n PGPROCs of the regular pool are
 * free, walking at most n entries of the free list (the floor check of a
 * login).  16 added an out-argument with the count found.
 */
static inline bool
cg_have_free_procs(int n)
{
#if PG_VERSION_NUM >= 160000
	int			nfree;

	return HaveNFreeProcs(n, &nfree);
#else
	return HaveNFreeProcs(n);
#endif
}

/*
 * ExecutorRun_hook: 18 dropped the execute_once argument.
 */
#if PG_VERSION_NUM >= 180000
#define CG_EXECUTOR_RUN_ARGS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define CG_EXECUTOR_RUN_CALL	queryDesc, direction, count
#else
#define CG_EXECUTOR_RUN_ARGS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define CG_EXECUTOR_RUN_CALL	queryDesc, direction, count, execute_once
#endif

#endif							/* CONNGOV_COMPAT_H */
