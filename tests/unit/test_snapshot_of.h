/* SPDX-License-Identifier: Apache-2.0 */
/* A snapshot compiled from YAML text, for the compiler's and its users' tests: any error fails the test. */
#ifndef XMESH_TEST_SNAPSHOT_OF_H
#define XMESH_TEST_SNAPSHOT_OF_H

#include "test_config.h"

#include "compile/snapshot.h"

static inline struct xm_snapshot *snapshot_from_yaml(const char *text, const struct xm_compile_opts *opts)
{
	char *path = temp_yaml(text);
	const char *paths[] = { path };
	struct xm_config cfg = { 0 };
	struct xm_snapshot *s;
	int err = 0;

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	s = snapshot_build(&cfg, opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s, "snapshot_build: %d", err);
	return s;
}

#endif
