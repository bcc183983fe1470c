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

/* The prefix of a skip that a kernel limitation excuses; test_sockmap_edge.c writes one by hand. */
#define SANDBOX_KERNEL_LIMITATION "KERNEL LIMITATION: "

/*
 * Ends a test that cannot run here: skipped when reason starts with SANDBOX_KERNEL_LIMITATION, failed with
 * reason otherwise. Only the kernel may excuse a BPF test: a missing tool, no root or no cgroup v2 mount
 * means it did not run (tests/e2e/run.sh applies the same rule).
 */
void sandbox_cannot_run(const char *reason) __attribute__((noreturn));

/* Why this machine cannot run the sandboxed BPF tests, or NULL; for sandbox_cannot_run(). */
const char *sandbox_unsupported(void);

/*
 * Enters a fresh netns and SANDBOX_CGROUP_ROOT/NAME-PID; fills cgroup (the path). Asserts on failure.
 * The cgroup is left and removed by sandbox_leave() or, failing that, at exit.
 */
void sandbox_enter(const char *name, char *cgroup, size_t len);
void sandbox_leave(void);

/*
 * A socket made in the cgroup this test process came from, where no test attaches programs: as the agent's
 * own sockets (its proxy listener), which the mesh cgroup's programs never see. Asserts on failure.
 */
int sandbox_socket_outside(int domain, int type);

#endif
