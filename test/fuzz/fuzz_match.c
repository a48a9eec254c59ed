/*-------------------------------------------------------------------------
 *
 * fuzz_match.c
 *		libFuzzer harness for conngov's application-name matcher.
 *
 * Two checks per input.  First, "text NUL pattern", each cut to 63 bytes as
 * at login: cg_like_match (src/match.c) must not crash and must agree with
 * a memoized reference implementation of LIKE with "\" escapes.  Second,
 * the same bytes read as a small budget set and a login over a narrow
 * alphabet (so that prefixes, roles and databases collide often): the
 * indexed matcher (cg_match_indexed) must pick exactly the budget the
 * linear scan picks, ties in priority and equal prefixes included.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_match.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "conngov.h"

/* link with libc alone: no libpgport */
#undef snprintf
#undef qsort

/* match.c refers to these; the harness calls the matchers directly */
CgSharedState *cg_shared = NULL;
CgBudget   *cg_budget_sets[2];
CgIndex		cg_indexes[2];

#define FUZZ_MAX_BUDGETS	12
#define FUZZ_HASH_SIZE		32	/* a power of 2, >= 2 x budgets */

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *ref_t;
static const char *ref_p;
static signed char memo[NAMEDATALEN + 1][NAMEDATALEN + 1];

/* LIKE by its definition: does text[i..] match pattern[j..]? */
static bool
ref_match(int i, int j)
{
	const char *t = ref_t + i;
	const char *p = ref_p + j;
	bool		r;

	if (memo[i][j] >= 0)
		return memo[i][j];
	if (*p == '\0')
		r = (*t == '\0');
	else if (*p == '%')
		r = ref_match(i, j + 1) || (*t != '\0' && ref_match(i + 1, j));
	else if (*t == '\0')
		r = false;
	else if (*p == '\\' && p[1] != '\0')
		r = (p[1] == *t) && ref_match(i + 1, j + 2);
	else if (*p == '_')
		r = ref_match(i + 1, j + 1);
	else
		r = (*p == *t) && ref_match(i + 1, j + 1);
	memo[i][j] = r;
	return r;
}

/* Byte b as a character of the narrow alphabet patterns and names use. */
static char
fuzz_char(uint8_t b)
{
	static const char alphabet[] = "ab%_\\a";

	return alphabet[b % (sizeof(alphabet) - 1)];
}

/* A short string of the narrow alphabet from data[*pos...]. */
static void
fuzz_string(const uint8_t *data, size_t size, size_t *pos, char *out, int max)
{
	int			len = (*pos < size) ? data[(*pos)++] % (max + 1) : 0;
	int			i;

	for (i = 0; i < len && *pos < size; i++)
		out[i] = fuzz_char(data[(*pos)++]);
	out[i] = '\0';
}

/* Budgets sorted as published: priority, then name. */
static int
fuzz_order_cmp(const void *a, const void *b)
{
	const CgBudget *ba = a;
	const CgBudget *bb = b;

	if (ba->priority != bb->priority)
		return ba->priority < bb->priority ? -1 : 1;
	return strcmp(ba->name, bb->name);
}

static void
fuzz_index(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"", "r1", "r2"};
	CgBudget	budgets[FUZZ_MAX_BUDGETS];
	int32		hash[FUZZ_HASH_SIZE];
	CgIndex		ix = {budgets, hash, FUZZ_HASH_SIZE - 1};
	uint64		lengths;
	size_t		pos = 0;
	int			n;
	int			i;
	char		app[NAMEDATALEN];
	const char *role;
	const char *db;

	if (size == 0)
		return;
	n = data[pos++] % (FUZZ_MAX_BUDGETS + 1);
	memset(budgets, 0, sizeof(budgets));
	for (i = 0; i < n; i++)
	{
		uint8_t		b = pos < size ? data[pos++] : 0;

		snprintf(budgets[i].name, NAMEDATALEN, "b%02d", i);
		fuzz_string(data, size, &pos, budgets[i].pattern, 8);
		strcpy(budgets[i].role_name, names[b % 3]);
		strcpy(budgets[i].database_name, names[(b / 3) % 3]);
		budgets[i].priority = (b / 9) % 3;
	}
	qsort(budgets, n, sizeof(CgBudget), fuzz_order_cmp);
	cg_index_build(&ix, n, &lengths);

	fuzz_string(data, size, &pos, app, 10);
	role = names[1 + (pos < size ? data[pos] : 0) % 2];
	db = names[1 + (pos < size ? data[pos] / 2 : 0) % 2];
	if (cg_match_indexed(&ix, lengths, app, role, db) !=
		cg_match_linear(budgets, n, app, role, db))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		text[NAMEDATALEN];
	char		pattern[NAMEDATALEN];
	const uint8_t *nul = memchr(data, '\0', size);
	size_t		tlen = nul ? (size_t) (nul - data) : size;
	size_t		plen = nul ? size - tlen - 1 : 0;

	tlen = Min(tlen, NAMEDATALEN - 1);
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	if (nul)
	{
		plen = Min(plen, NAMEDATALEN - 1);
		memcpy(pattern, nul + 1, plen);
	}
	pattern[plen] = '\0';

	/* strings end at their first NUL, as C strings in shared memory do */
	ref_t = text;
	ref_p = pattern;
	memset(memo, -1, sizeof(memo));
	if (cg_like_match(text, pattern) != ref_match(0, 0))
		abort();

	fuzz_index(data, size);
	return 0;
}
