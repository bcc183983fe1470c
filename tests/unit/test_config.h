/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the config reader's tests: fixture paths, loading, finding a diagnostic. */
#ifndef XMESH_TEST_CONFIG_H
#define XMESH_TEST_CONFIG_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config/model.h"

/* Fixtures live next to this file: tests/unit/fixtures/config/NAME (the runner starts in the repo root). */
static inline const char *fixture(const char *name)
{
	static char paths[16][512];
	static unsigned next;
	char *buf = paths[next++ % 16];
	const char *slash = strrchr(__FILE__, '/');
	int dir_len = slash ? (int)(slash - __FILE__) : 1;

	snprintf(buf, sizeof(paths[0]), "%.*s/fixtures/config/%s", dir_len, slash ? __FILE__ : ".", name);
	return buf;
}

/* Write text to a fresh temporary .yaml file; the caller unlinks it. */
static inline char *temp_yaml(const char *text)
{
	char *path = strdup("/tmp/xmesh-cfg-test-XXXXXX.yaml");
	int fd;
	FILE *f;

	cr_assert_not_null(path);
	fd = mkstemps(path, 5);
	cr_assert_geq(fd, 0, "mkstemps failed");
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static inline void dump_diags(const struct xm_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		cr_log_info("diag %zu: %s:%d:%d: %s", i, d->items[i].loc.file ? d->items[i].loc.file : "(null)",
			    d->items[i].loc.line, d->items[i].loc.col, d->items[i].msg);
}

/* The diagnostics that are errors (warnings, such as "HTTP/2 is not supported yet", are not). */
static inline size_t n_errors(const struct xm_diags *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n; i++)
		n += !d->items[i].warning;
	return n;
}

/* Load and require a clean result: no error (warnings are allowed). */
static inline void load_clean(const char *const *paths, size_t n, struct xm_config *cfg)
{
	struct xm_diags d = { 0 };
	int r = config_load(paths, n, cfg, &d);

	if (r || n_errors(&d)) {
		dump_diags(&d);
		diags_print(&d, stderr);
	}
	cr_assert_eq(r, 0, "config_load returned %d with %zu diagnostics", r, d.n);
	cr_assert_eq(n_errors(&d), 0);
	diags_free(&d);
}

/* Loads text (which must be clean) into cfg, through a temporary file. */
static inline void load_text_clean(const char *text, struct xm_config *cfg)
{
	char *path = temp_yaml(text);
	const char *paths[] = { path };

	load_clean(paths, 1, cfg);
	unlink(path);
	free(path);
}

/* Loads text that must fail; returns the file name (the caller frees it): cfg keeps pointing the diagnostics at it. */
static inline char *load_text_bad(const char *text, struct xm_config *cfg, struct xm_diags *d)
{
	char *path = temp_yaml(text);
	const char *paths[] = { path };

	memset(d, 0, sizeof(*d));
	cr_assert_eq(config_load(paths, 1, cfg, d), -EINVAL);
	unlink(path);
	return path;
}

/* The diagnostic at file (suffix match) line:col whose message contains every given fragment; fails if none. */
static inline const struct xm_diag *find_diag(const struct xm_diags *d, const char *file_suffix, int line, int col,
					      const char *frag1, const char *frag2)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct xm_diag *x = &d->items[i];
		size_t fl = x->loc.file ? strlen(x->loc.file) : 0, sl = strlen(file_suffix);

		if (!x->loc.file || fl < sl || strcmp(x->loc.file + fl - sl, file_suffix) != 0)
			continue;
		if (x->loc.line != line || x->loc.col != col)
			continue;
		if ((frag1 && !strstr(x->msg, frag1)) || (frag2 && !strstr(x->msg, frag2)))
			continue;
		return x;
	}
	dump_diags(d);
	diags_print(d, stderr);
	cr_assert_fail("no diagnostic %s:%d:%d containing \"%s\" and \"%s\"", file_suffix, line, col,
		       frag1 ? frag1 : "", frag2 ? frag2 : "");
	return NULL;
}

/* A text that must fail to load, and the diagnostic it must give: at line:col, with msg in its message. */
struct bad_case {
	const char *yaml;
	int line, col;
	const char *msg;
};

/* Loads each case, asserting its diagnostic (find_diag). */
static inline void expect_bad_cases(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];
		struct xm_config cfg;
		struct xm_diags d;
		char *file = load_text_bad(c->yaml, &cfg, &d);

		cr_log_info("case %zu: %s", i, c->msg);
		find_diag(&d, strrchr(file, '/') + 1, c->line, c->col, c->msg, NULL);
		diags_free(&d);
		config_free(&cfg);
		free(file);
	}
}

static inline bool ip_eq(const struct xm_ip *ip, const char *text)
{
	struct xm_ip want = { 0 };
	char buf[64];

	snprintf(buf, sizeof(buf), "%s", text);
	if (strchr(text, ':')) {
		want.family = 6;
		cr_assert_eq(inet_pton(AF_INET6, buf, want.bytes), 1);
	} else {
		want.family = 4;
		cr_assert_eq(inet_pton(AF_INET, buf, want.bytes), 1);
	}
	return ip->family == want.family && memcmp(ip->bytes, want.bytes, 16) == 0;
}

#define assert_ip(ip, text) cr_assert(ip_eq((ip), (text)), "IP is not %s (family %u)", (text), (ip)->family)

#endif
