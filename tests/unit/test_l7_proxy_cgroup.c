// SPDX-License-Identifier: Apache-2.0
/*
 * Where the L7 proxy's cgroup goes (agent/datapath/l7_proxy_cgroup.c): next to a served child cgroup, below a
 * served hierarchy root, never the root itself; made and removed idempotently. A temporary directory tree
 * with cgroup.procs files stands in for cgroupfs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datapath/l7_proxy_cgroup.h"

static char root[PATH_MAX]; /* <tmp>/cg: a "hierarchy root" with cgroup.procs; <tmp> itself is no cgroup */

static void touch_procs(const char *dir)
{
	char p[PATH_MAX + 16];
	FILE *f;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void setup(void)
{
	char tmpl[] = "/tmp/xm-l7cg-XXXXXX", served[PATH_MAX + 8];

	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(root, sizeof(root), "%s/cg", tmpl);
	cr_assert_eq(mkdir(root, 0755), 0);
	touch_procs(root);
	snprintf(served, sizeof(served), "%s/mesh", root);
	cr_assert_eq(mkdir(served, 0755), 0);
	touch_procs(served);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%.*s'", (int)(strrchr(root, '/') - root), root);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(l7_proxy_cgroup, .init = setup, .fini = teardown);

Test(l7_proxy_cgroup, child_cgroup_gets_a_sibling_and_root_gets_a_child)
{
	char served[PATH_MAX + 8], slash[PATH_MAX + 8], want[PATH_MAX + 32], got[PATH_MAX];

	snprintf(served, sizeof(served), "%s/mesh", root);
	snprintf(want, sizeof(want), "%s/mesh-l7-proxy", root);
	cr_assert_eq(l7_proxy_cgroup_path(served, got, sizeof(got)), 0);
	cr_expect_str_eq(got, want);
	cr_expect_not(l7_proxy_cgroup_inherits(served, got), "a sibling inherits nothing from the served cgroup");
	/* trailing slashes do not change the answer */
	snprintf(slash, sizeof(slash), "%s/mesh//", root);
	cr_assert_eq(l7_proxy_cgroup_path(slash, got, sizeof(got)), 0);
	cr_expect_str_eq(got, want);

	/* the hierarchy root: its parent is no cgroup, so the proxy cgroup goes below it */
	snprintf(want, sizeof(want), "%s/xmesh-l7-proxy", root);
	cr_assert_eq(l7_proxy_cgroup_path(root, got, sizeof(got)), 0);
	cr_expect_str_eq(got, want);
	cr_expect(l7_proxy_cgroup_inherits(root, got), "below the served root: sockops is inherited");
	cr_expect_not(l7_proxy_cgroup_inherits("/a/mesh", "/a/mesh-l7-proxy"), "a name prefix is no ancestor");
}

Test(l7_proxy_cgroup, too_long_is_refused)
{
	char served[PATH_MAX + 8], got[16];

	snprintf(served, sizeof(served), "%s/mesh", root);
	cr_expect_eq(l7_proxy_cgroup_path(served, got, sizeof(got)), -ENAMETOOLONG);
}

Test(l7_proxy_cgroup, create_and_remove_are_idempotent)
{
	char served[PATH_MAX + 8], path[PATH_MAX];
	struct stat st;

	snprintf(served, sizeof(served), "%s/mesh", root);
	cr_assert_eq(l7_proxy_cgroup_path(served, path, sizeof(path)), 0);
	cr_expect_eq(l7_proxy_cgroup_remove(served), 0, "nothing made yet: nothing to do");
	cr_assert_eq(l7_proxy_cgroup_create(path), 0);
	cr_assert_eq(l7_proxy_cgroup_create(path), 0, "an existing one is fine (a restart)");
	cr_assert_eq(stat(path, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(l7_proxy_cgroup_remove(served), 0);
	cr_expect_neq(stat(path, &st), 0, "removed");
	cr_expect_eq(l7_proxy_cgroup_remove(served), 0);
}
