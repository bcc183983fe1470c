/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kernel refused at the pods' veths: xmesh_plaintext_rejected_total{pod,namespace,port} (plaintext
 * under STRICT) and xmesh_authz_plaintext_denied_total{namespace,pod,port,policy} (plaintext that
 * AuthorizationPolicy denies).
 */
#ifndef XMESH_METRICS_PEER_AUTH_H
#define XMESH_METRICS_PEER_AUTH_H

struct xm_scrape;
struct xm_snapshot;

/*
 * Sums xm_mtls_rejected (rejected_fd) over CPUs and adds one series per pod port, named through the
 * snapshot's identities (an address no Pod has any more: pod "unknown", namespace "unknown"). Refused SYNs
 * and dropped fragments both count; fragments carry port "0" (their port is unknown). Returns 0 or -errno.
 */
int peer_auth_metrics_collect(int rejected_fd, const struct xm_snapshot *snap, struct xm_scrape *sc);

/*
 * Sums xm_authz_plain_denied (denied_fd) over CPUs: one series per pod, port and policy, the policy named
 * through the snapshot's AuthorizationPolicies ("NS/NAME" of a DENY policy, "allow-not-matched"; a policy no
 * longer in the config: "unknown"). Returns 0 or -errno.
 */
int authz_plain_metrics_collect(int denied_fd, const struct xm_snapshot *snap, struct xm_scrape *sc);

#endif
