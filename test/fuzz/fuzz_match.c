/*-------------------------------------------------------------------------
 *
 * fuzz_match.c
 *		libFuzzer harness for conngov's application-name matcher.
 *
 * The input is "text NUL pattern", each cut to 63 bytes as at login.  The
 * matcher under test (cg_like_match, src/match.c) must not crash and must
 * agree with a memoized reference implementation of LIKE with "\" escapes.
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

/* match.c refers to these; the harness only calls cg_like_match */
CgSharedState *cg_shared = NULL;
CgBudget   *cg_budgets = NULL;

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
	return 0;
}
