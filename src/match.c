/*-------------------------------------------------------------------------
 *
 * match.c
 *		Matching a login (application_name, role, database) to a budget.
 *
 * Runs in the login path under the shared lock: no allocation, no catalog
 * access, linear in the number of budgets.  The budgets are published
 * already sorted by (priority, name), so the first match wins.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/match.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "conngov.h"

/*
 * cg_like_match: SQL LIKE, case-sensitive, with "\" escaping the next
 * character.  "%" matches any run of bytes, "_" one byte.  Application names
 * reach the server ASCII-only (PostgreSQL replaces other bytes at login), so
 * bytes are characters here.  A trailing lone "\" (which the table refuses)
 * matches itself.
 *
 * Iterative, remembering only the last "%": on a mismatch, the text that
 * "%" swallowed grows by one byte.  Linear space, O(n*m) time at worst for
 * 63-byte strings.
 */
bool
cg_like_match(const char *text, const char *pattern)
{
	const char *t = text;
	const char *p = pattern;
	const char *star_p = NULL;
	const char *star_t = NULL;

	while (*t != '\0')
	{
		if (*p == '%')
		{
			while (*p == '%')
				p++;
			if (*p == '\0')
				return true;
			star_p = p;
			star_t = t;
			continue;
		}
		else
		{
			bool		any = false;
			char		pc = *p;
			int			plen = 1;

			if (*p == '\\' && p[1] != '\0')
			{
				pc = p[1];
				plen = 2;
			}
			else if (*p == '_')
				any = true;

			if (*p != '\0' && (any || pc == *t))
			{
				p += plen;
				t++;
				continue;
			}
		}

		/* mismatch: let the last "%" swallow one more byte, or fail */
		if (star_p == NULL)
			return false;
		p = star_p;
		t = ++star_t;
	}

	while (*p == '%')
		p++;
	return *p == '\0';
}

/*
 * cg_match_budget: index of the first published budget that matches the
 * login, or CG_UNBUDGETED.  Caller holds cg_shared->lock (shared is enough).
 */
int
cg_match_budget(const char *application_name, const char *role_name,
				const char *database_name)
{
	int			i;

	for (i = 0; i < cg_shared->nbudgets; i++)
	{
		const CgBudget *b = &cg_budgets[i];

		if (b->role_name[0] != '\0' && strcmp(b->role_name, role_name) != 0)
			continue;
		if (b->database_name[0] != '\0' &&
			strcmp(b->database_name, database_name) != 0)
			continue;
		if (cg_like_match(application_name, b->pattern))
			return i;
	}
	return CG_UNBUDGETED;
}
