/*-------------------------------------------------------------------------
 *
 * floors.c
 *		Guaranteed floors (min_connections): whether a login leaves enough
 *		free normal slots for the other budgets' unused floors.
 *
 * A login not within its own budget's floor is refused when the free
 * normal slots are fewer than the unused floors of the enforce budgets
 * (floors_unused, kept exact by every charge and release).  Racing logins
 * must err on the side of the floor, so the free slots are counted FIRST
 * and the unused floors read AFTER:
 *  - every login holds its PGPROC before it gets here, so the free count
 *    already leaves out each login racing with this one, admitted or not;
 *  - a floor budget's session that ends gives its charge back (unused
 *    floors go up) before its PGPROC is freed (free slots go up), so a
 *    later read of the unused floors is never older than the free count;
 *  - a floor budget's login that is charged meanwhile lowers the unused
 *    floors, but its PGPROC was already counted as taken.
 * HaveNFreeProcs() needs the number to look for before it counts, so the
 * unused floors are read once before (the number) and once after; when
 * they went up in between, the count is made again.  Reading them too high
 * refuses one login too many in a race, never one too few.  A login
 * within its floor whose PGPROC is there but whose reserved-slot check
 * would fail because refused logins still hold theirs waits up to
 * CG_TRANSIENT_WAIT_MS for them to leave.  With no floor configured the
 * check is one flag test.
 *
 * Lock rules: cg_floors_refuse runs under cg_shared->lock, shared (the
 * caller's); it walks at most unused floors + reserved slots of the free
 * list and, only when it refuses, the first CG_MAX_FLOOR_LIST floor
 * budgets.  cg_wait_transient holds no lock.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/floors.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"

#include "compat.h"
#include "conngov.h"

/* How long a login within its floor waits for refused logins to leave. */
#define CG_TRANSIENT_WAIT_MS	1000

/*
 * cg_floors_refuse: whether a login just charged to budget (or
 * CG_UNBUDGETED), in_use being the budget's total with it, leaves fewer
 * free normal slots than the unused floors of the enforce budgets.  A
 * login within its own budget's floor is never refused for floors.  The
 * order of the reads is the file header's.  When refused, fills *fr with
 * what the DETAIL names.  Caller holds the lock, shared; O(1) when no
 * floor is configured.
 */
bool
cg_floors_refuse(int budget, uint32 in_use, CgFloorRefusal *fr)
{
	int			nreserved = CG_SUPERUSER_RESERVED() + CG_RESERVED_CONNECTIONS();
	uint32		unused;
	uint32		again;
	bool		enough;
	int			i;

	if (!cg_shared->has_floors)
		return false;
	if (budget >= 0 && !cg_budgets[budget].monitor &&
		in_use <= (uint32) cg_budgets[budget].min_connections)
		return false;

	/* free slots first, unused floors after (see the file header) */
	unused = pg_atomic_read_u32(&cg_shared->floors_unused);
	for (;;)
	{
		enough = cg_have_free_procs((int) unused + nreserved);
		pg_memory_barrier();
		again = pg_atomic_read_u32(&cg_shared->floors_unused);
		if (again <= unused)
			break;
		unused = again;
	}
	if (enough)
		return false;

	fr->nfree = Max(cg_free_procs() - nreserved, 0);
	fr->unused = unused;
	fr->n = 0;
	for (i = 0; i < Min(cg_shared->nfloors, CG_MAX_FLOOR_LIST); i++)
	{
		int			f = cg_shared->floor_list[i];
		uint32		u = cg_unused_floor(f);

		if (f == budget || u == 0)
			continue;
		if (fr->n < CG_FLOOR_NAMES)
		{
			strlcpy(fr->b[fr->n].name, cg_budgets[f].name, NAMEDATALEN);
			fr->b[fr->n].unused = u;
			fr->b[fr->n].min_connections = cg_budgets[f].min_connections;
		}
		fr->n++;
	}
	return true;
}

/*
 * cg_wait_transient: a login within its budget's floor has its PGPROC, but
 * PostgreSQL's reserved-slot check (right after this hook) would refuse it
 * because logins being refused still hold theirs for a moment.  Wait for
 * them to leave, at most CG_TRANSIENT_WAIT_MS; no lock held.
 */
void
cg_wait_transient(void)
{
	int			nreserved = CG_SUPERUSER_RESERVED() + CG_RESERVED_CONNECTIONS();
	int			waited = 0;

	while (nreserved > 0 && !cg_have_free_procs(nreserved) &&
		   waited < CG_TRANSIENT_WAIT_MS)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 5, cg_wait_event_login());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited += 5;
	}
}
