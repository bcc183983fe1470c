/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Closing the established plaintext connections a policy change denies (docs/mtls.md "Closing what a change
 * denies"). The kernel judges a plaintext connection at its SYN only; after the agent publishes a changed
 * table (xm_authz_plain or the STRICT ports), a sweep visits the network namespace of every local pod that
 * has something to refuse, lists its TCP connections (NETLINK_SOCK_DIAG), judges each accepted one as the
 * kernel would judge its SYN now (compile/plain_judge.h) and destroys the refused ones (SOCK_DESTROY: the
 * pod's application sees ECONNABORTED, the client a reset).
 *
 * Threads: a sweep runs on a thread of its own that enters the pods' namespaces (setns affects that thread
 * only) and exits when the sweep is done, never on the control loop. Requests coalesce: one arriving while a
 * sweep runs replaces any waiting one and runs after it; never two sweeps at once.
 */
#ifndef XMESH_DAEMON_PLAIN_SWEEP_H
#define XMESH_DAEMON_PLAIN_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/sockmap.h>

#include "metrics/peer_auth_metrics.h"

struct xm_snapshot;
struct plain_sweeper;
struct strbuf;

/* dirs: where namespace files are (NULL-terminated; NULL: /run/netns and /var/run/netns). NULL on failure (memory,
 * /proc/thread-self/ns/net). */
struct plain_sweeper *plain_sweeper_new(const char *const *dirs);

/*
 * Sweeps the pods (sorted, unique pod addresses: plain_rules_changed_pods; copied) against snap's tables (a
 * reference is taken) once the running sweep, if any, is done.
 */
void plain_sweeper_request(struct plain_sweeper *sw, struct xm_snapshot *snap, const struct xm_local_ip_key *pods,
			   size_t n_pods);

/* The counts so far (a copy into *out, malloc'd; n in *n) and the problems. Thread-safe. 0 or -ENOMEM. */
int plain_sweeper_counts(struct plain_sweeper *sw, struct plain_close_count **out, size_t *n,
			 struct plain_sweep_problems *p);

/* One line (or a JSON member when json) about the sweeps for the status output. */
void plain_sweeper_status(struct plain_sweeper *sw, bool json, struct strbuf *out);

/* Waits for the running sweep (a waiting one is dropped) and frees. */
void plain_sweeper_free(struct plain_sweeper *sw);

/* Waits until no sweep runs or waits (tests). */
void plain_sweeper_wait(struct plain_sweeper *sw);

#endif
