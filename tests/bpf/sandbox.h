/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a BPF test runs: a private network namespace with only loopback (a VIP that is not rewritten goes
 * nowhere) and a child cgroup this test process moves into, removed again at exit even when setup fails.
 * Criterion runs each test in its own process, so neither leaks into other tests.
 */
#ifndef XMESH_TEST_SANDBOX_H
#define XMESH_TEST_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#define SANDBOX_CGROUP_ROOT "/sys/fs/cgroup/unified"

/* True when this machine can run BPF tests (root, BTF, cgroup v2 at SANDBOX_CGROUP_ROOT). */
bool sandbox_supported(void);

/*
 * Enters a fresh netns and SANDBOX_CGROUP_ROOT/NAME-PID; fills cgroup (the path). Asserts on failure.
 * The cgroup is left and removed by sandbox_leave() or, failing that, at exit.
 */
void sandbox_enter(const char *name, char *cgroup, size_t len);
void sandbox_leave(void);

#endif
