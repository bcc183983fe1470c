// SPDX-License-Identifier: Apache-2.0
/*
 * RE2's grammar enforced over PCRE2: a scan that refuses every construct RE2 lacks (or that PCRE2 reads
 * differently), then PCRE2 compiles with full-match anchoring and JIT where available.
 */
#include "l7/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RE2_MAX_REPEAT 1000 /* RE2 refuses counted repetition above this */

struct l7_regex {
	pcre2_code *code;
};

static int refuse(char *err, size_t size, size_t at, const char *what)
{
	snprintf(err, size, "%s at offset %zu is not RE2 syntax (Istio's regex dialect)", what, at);
	return -EINVAL;
}

/* Escapes RE2 knows with PCRE2's meaning; digits 1-9 would be backreferences in PCRE2. */
static bool re2_escape_ok(char c, bool in_class)
{
	if (!isalnum((unsigned char)c))
		return true; /* an escaped punctuation character is itself */
	if (strchr("dDsSwWpPaftnrx0", c))
		return true;
	return !in_class && strchr("bBAzQE", c);
}

/* A group opener "(?..." at p[0] == '('; returns the bytes it takes, or 0 after filling err. */
static size_t check_group(const char *p, size_t at, char *err, size_t size)
{
	size_t i = 2;

	if (p[1] != '?')
		return p[1] == '*' ? (refuse(err, size, at, "a backtracking verb (*"), 0) : 1;
	switch (p[2]) {
	case ':':
		return 3;
	case '=':
	case '!':
		refuse(err, size, at, "a lookahead (?= or (?!");
		return 0;
	case '>':
		refuse(err, size, at, "an atomic group (?>");
		return 0;
	case '(':
		refuse(err, size, at, "a conditional (?(");
		return 0;
	case '|':
		refuse(err, size, at, "a branch reset (?|");
		return 0;
	case '#':
		refuse(err, size, at, "a comment (?#");
		return 0;
	case 'P':
		if (p[3] == '<')
			return 4; /* (?P<name> */
		refuse(err, size, at, "a named reference or recursion (?P");
		return 0;
	case '<':
		if (p[3] == '=' || p[3] == '!') {
			refuse(err, size, at, "a lookbehind (?<= or (?<!");
			return 0;
		}
		return 3; /* (?<name> */
	default:
		break;
	}
	/* Flags: RE2 has i, m, s, U, optionally negated, then ')' or ':'. */
	for (; p[i] && p[i] != ')' && p[i] != ':'; i++) {
		if (!strchr("imsU-", p[i])) {
			if (isdigit((unsigned char)p[i]) || p[i] == 'R' || p[i] == '&' || p[i] == '+')
				refuse(err, size, at, "a recursion or subroutine call");
			else
				refuse(err, size, at, "a group flag other than i, m, s, U");
			return 0;
		}
	}
	return p[i] ? i + 1 : (refuse(err, size, at, "an unterminated group"), 0);
}

/* "{n}", "{n,}", "{n,m}" at p: its length, 0 when p is a literal '{' (RE2 and PCRE2 agree on that). */
static size_t counted_repeat(const char *p, unsigned long *lo, unsigned long *hi)
{
	char *end;
	size_t i = 1;

	if (!isdigit((unsigned char)p[1]))
		return 0;
	*lo = strtoul(p + 1, &end, 10);
	*hi = *lo;
	i = (size_t)(end - p);
	if (p[i] == ',') {
		i++;
		if (isdigit((unsigned char)p[i])) {
			*hi = strtoul(p + i, &end, 10);
			i = (size_t)(end - p);
		} else {
			*hi = 0;
		}
	}
	return p[i] == '}' ? i + 1 : 0;
}

static int check_grammar(const char *pattern, char *err, size_t size)
{
	const char *p = pattern;
	bool quantifiable = false; /* the previous item can take a quantifier */
	bool after_quantifier = false;

	err[0] = '\0';
	for (size_t i = 0; p[i];) {
		char c = p[i];

		if (c == '\\') {
			if (!p[i + 1])
				return refuse(err, size, i, "a trailing backslash");
			if (!re2_escape_ok(p[i + 1], false))
				return refuse(err, size, i,
					      p[i + 1] >= '1' && p[i + 1] <= '9' ? "a backreference" : "this escape");
			if (p[i + 1] == 'Q') { /* literal text up to \E */
				const char *e = strstr(p + i + 2, "\\E");

				i = e ? (size_t)(e - p) + 2 : strlen(p);
			} else {
				i += 2;
			}
			quantifiable = true;
			after_quantifier = false;
			continue;
		}
		if (c == '[') {
			size_t j = i + 1;

			if (p[j] == '^')
				j++;
			if (p[j] == ']')
				j++;
			for (; p[j] && p[j] != ']'; j++) {
				if (p[j] == '[' && p[j + 1] == ':') {
					const char *e = strstr(p + j + 2, ":]");

					if (!e)
						return refuse(err, size, j, "an unterminated [:class:]");
					j = (size_t)(e - p) + 1;
				} else if (p[j] == '\\') {
					if (!p[j + 1] || !re2_escape_ok(p[j + 1], true))
						return refuse(err, size, j, "this escape in a character class");
					j++;
				}
			}
			if (!p[j])
				return refuse(err, size, i, "an unterminated character class");
			i = j + 1;
			quantifiable = true;
			after_quantifier = false;
			continue;
		}
		if (c == '(') {
			size_t n = check_group(p + i, i, err, size);

			if (!n)
				return -EINVAL;
			i += n;
			quantifiable = false;
			after_quantifier = false;
			continue;
		}
		if (c == '*' || c == '+' || c == '?' || c == '{') {
			unsigned long lo = 0, hi = 0;
			size_t n = c == '{' ? counted_repeat(p + i, &lo, &hi) : 1;

			if (c == '{' && !n) { /* a literal brace */
				i++;
				quantifiable = true;
				after_quantifier = false;
				continue;
			}
			if (after_quantifier && c == '+')
				return refuse(err, size, i, "a possessive quantifier");
			if (after_quantifier && c == '?') { /* lazy: RE2 has it */
				i++;
				after_quantifier = false;
				continue;
			}
			if (!quantifiable)
				return refuse(err, size, i, "a quantifier with nothing to repeat");
			if (c == '{' && (lo > RE2_MAX_REPEAT || hi > RE2_MAX_REPEAT))
				return refuse(err, size, i, "a repeat count above 1000");
			i += n;
			quantifiable = false;
			after_quantifier = true;
			continue;
		}
		quantifiable = c != '|' && c != '^' && c != '$';
		if (c == ')' || c == '.')
			quantifiable = true;
		after_quantifier = false;
		i++;
	}
	return 0;
}

void l7_regex_free(struct l7_regex *re);

static struct l7_regex *compile_checked(const char *pattern, bool caseless, char *err, size_t size)
{
	uint32_t opts =
	    PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	struct l7_regex *re = calloc(1, sizeof(*re));
	PCRE2_SIZE off = 0;
	int code = 0;

	if (!re) {
		snprintf(err, size, "out of memory");
		return NULL;
	}
	if (caseless)
		opts |= PCRE2_CASELESS;
	re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
	if (!re->code) {
		PCRE2_UCHAR msg[160];

		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, size, "%s at offset %zu", (const char *)msg, (size_t)off);
		free(re);
		return NULL;
	}
	pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* interpreted when JIT is unavailable */
	return re;
}

struct l7_regex *l7_regex_compile(const char *pattern, bool caseless, char *err, size_t size)
{
	if (check_grammar(pattern, err, size))
		return NULL;
	return compile_checked(pattern, caseless, err, size);
}

int l7_regex_check(const char *pattern, char *err, size_t size)
{
	struct l7_regex *re = l7_regex_compile(pattern, false, err, size);

	l7_regex_free(re);
	return re ? 0 : -EINVAL;
}

/* Each thread's match data, made on its first match: no captures are wanted, one pair is enough. */
static __thread pcre2_match_data *thread_match_data;

bool l7_regex_match(const struct l7_regex *re, const char *s, size_t len)
{
	int rc;

	if (!thread_match_data)
		thread_match_data = pcre2_match_data_create(1, NULL);
	if (!thread_match_data)
		return false;
	rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, thread_match_data, NULL);
	return rc >= 0;
}

void l7_regex_free(struct l7_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	free(re);
}
