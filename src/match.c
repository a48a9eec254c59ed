/*-------------------------------------------------------------------------
 *
 * match.c
 *		Matching a login (application_name, role, database) to a budget.
 *
 * Runs in the login path under the shared lock: no allocation, no catalog
 * access.  The budgets are published sorted by (priority, name), so the
 * first match wins, and indexed so that budgets that cannot match a login
 * cost it nothing.
 *
 * The index key of a budget is (role_name, database_name, literal prefix of
 * the pattern up to its first wildcard); "" stands for any role or any
 * database.  Budgets with one key form a chain in matching order.  A login
 * can only match budgets whose key is one of: its role or "", its database
 * or "", and a prefix of its application_name whose length is one that
 * some key has (the set's prefix_lengths bitmap).  So it probes at most 4
 * x (distinct prefix lengths) buckets, walks each chain until the first
 * budget whose pattern matches, and keeps the one first in matching order:
 * the same budget the linear scan (cg_match_linear, kept as the reference
 * for the fuzz harness and conngov.match()) finds.
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
 * cg_pattern_prefix: the literal bytes a pattern starts with, up to its
 * first unescaped "%" or "_", unescaped into prefix (NAMEDATALEN bytes).
 * Returns their number.  Every text the pattern matches starts with them.
 */
int
cg_pattern_prefix(const char *pattern, char *prefix)
{
	const char *p = pattern;
	int			n = 0;

	while (*p != '\0' && *p != '%' && *p != '_')
	{
		if (*p == '\\' && p[1] != '\0')
			p++;
		prefix[n++] = *p++;
	}
	prefix[n] = '\0';
	return n;
}

/* FNV-1a over a string and its terminating NUL, continuing from h. */
static inline uint32
cg_hash_str(uint32 h, const char *s)
{
	do
	{
		h ^= (unsigned char) *s;
		h *= 16777619;
	} while (*s++ != '\0');
	return h;
}

static inline uint32
cg_hash_byte(uint32 h, unsigned char c)
{
	h ^= c;
	return h * 16777619;
}

/* The bucket of a key: role and database hashed, then the prefix bytes. */
static inline uint32
cg_hash_final(uint32 h, int prefix_len)
{
	h ^= (uint32) prefix_len;
	/* murmur3's finalizer spreads the low bits the mask keeps */
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

#define CG_HASH_SEED	2166136261u

/* Does budget b have the key (role, database, text's first len bytes)? */
static inline bool
cg_key_equal(const CgBudget *b, const char *role_name,
			 const char *database_name, const char *text, int len)
{
	const char *p = b->pattern;
	int			i;

	if (b->prefix_len != len ||
		strcmp(b->role_name, role_name) != 0 ||
		strcmp(b->database_name, database_name) != 0)
		return false;
	for (i = 0; i < len; i++, p++)
	{
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p != text[i])
			return false;
	}
	return true;
}

/*
 * cg_index_build: index budgets[0..nbudgets) of ix (already in matching
 * order): fill each budget's prefix_len and next, the hash table (all of
 * hash_mask + 1 entries) and *prefix_lengths.  The table has at least
 * twice as many entries as budgets, so linear probing stays short.
 */
void
cg_index_build(CgIndex *ix, int nbudgets, uint64 *prefix_lengths)
{
	int			i;
	uint64		lengths = 0;

	for (i = 0; i <= (int) ix->hash_mask; i++)
		ix->hash[i] = -1;

	/* backwards, so that each chain ends up in matching order */
	for (i = nbudgets - 1; i >= 0; i--)
	{
		CgBudget   *b = &ix->budgets[i];
		char		prefix[NAMEDATALEN];
		uint32		h;
		int			k;

		b->prefix_len = cg_pattern_prefix(b->pattern, prefix);
		lengths |= UINT64CONST(1) << b->prefix_len;
		h = cg_hash_str(cg_hash_str(CG_HASH_SEED, b->role_name),
						b->database_name);
		for (k = 0; k < b->prefix_len; k++)
			h = cg_hash_byte(h, (unsigned char) prefix[k]);
		h = cg_hash_final(h, b->prefix_len);

		for (;; h++)
		{
			int32	   *e = &ix->hash[h & ix->hash_mask];

			if (*e < 0)
			{
				b->next = -1;
				*e = i;
				break;
			}
			if (cg_key_equal(&ix->budgets[*e], b->role_name, b->database_name,
							 prefix, b->prefix_len))
			{
				b->next = *e;
				*e = i;
				break;
			}
		}
	}
	*prefix_lengths = lengths;
}

/*
 * Probe one key; lower *best to the first budget of its chain that
 * matches application_name, if that comes earlier.
 */
static inline void
cg_probe(const CgIndex *ix, uint32 h, const char *application_name,
		 const char *role_name, const char *database_name, int len,
		 int *best)
{
	for (;; h++)
	{
		int32		i = ix->hash[h & ix->hash_mask];

		if (i < 0)
			return;
		if (!cg_key_equal(&ix->budgets[i], role_name, database_name,
						  application_name, len))
			continue;
		/* the chain, in matching order: stop at the first match */
		for (; i >= 0 && (*best < 0 || i < *best); i = ix->budgets[i].next)
		{
			if (cg_like_match(application_name, ix->budgets[i].pattern))
			{
				*best = i;
				break;
			}
		}
		return;
	}
}

/*
 * cg_match_indexed: index of the first budget (in matching order) of ix
 * that matches the login, or CG_UNBUDGETED.
 */
int
cg_match_indexed(const CgIndex *ix, uint64 prefix_lengths,
				 const char *application_name, const char *role_name,
				 const char *database_name)
{
	const char *roles[2] = {role_name, ""};
	const char *dbs[2] = {database_name, ""};
	int			best = -1;
	int			r,
				d;

	for (r = 0; r < 2; r++)
	{
		for (d = 0; d < 2; d++)
		{
			uint32		h = cg_hash_str(cg_hash_str(CG_HASH_SEED, roles[r]),
										dbs[d]);
			uint64		lengths = prefix_lengths;
			int			len = 0;

			/* one pass over the name, probing each prefix length in use */
			for (;;)
			{
				if (lengths & 1)
					cg_probe(ix, cg_hash_final(h, len), application_name,
							 roles[r], dbs[d], len, &best);
				lengths >>= 1;
				if (lengths == 0 || application_name[len] == '\0')
					break;
				h = cg_hash_byte(h, (unsigned char) application_name[len]);
				len++;
			}
		}
	}
	return best < 0 ? CG_UNBUDGETED : best;
}

/*
 * cg_match_linear: the same answer by trying every budget in order.
 */
int
cg_match_linear(const CgBudget *budgets, int nbudgets,
				const char *application_name, const char *role_name,
				const char *database_name)
{
	int			i;

	for (i = 0; i < nbudgets; i++)
	{
		const CgBudget *b = &budgets[i];

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

/*
 * cg_match_budget: index of the first published budget that matches the
 * login, or CG_UNBUDGETED.  Caller holds cg_shared->lock (shared is enough).
 */
int
cg_match_budget(const char *application_name, const char *role_name,
				const char *database_name)
{
	int			k = cg_shared->active;

	return cg_match_indexed(&cg_indexes[k], cg_shared->set[k].prefix_lengths,
							application_name, role_name, database_name);
}
