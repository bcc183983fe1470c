/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kernel refused at the pods' veths: xmesh_plaintext_rejected_total{pod,namespace,port} (plaintext
 * under STRICT) and xmesh_authz_plaintext_denied_total{namespace,pod,port,policy} (plaintext that
 * AuthorizationPolicy denies).
 */
#ifndef XMESH_METRICS_PEER_AUTH_H
#define XMESH_METRICS_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

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

/* Established plaintext connections the agent closed after a policy change, by pod, port and reason. */
struct plain_close_count {
	union xm_addr addr; /* the pod's */
	uint8_t family;
	bool strict;	 /* closed by STRICT (policy "strict"), else by the policy below */
	uint16_t port;	 /* the pod's port */
	uint32_t policy; /* authz_policy_id or XM_AUTHZ_POLICY_NO_ALLOW */
	uint64_t n;
};

/* What the sweeps could not do: pods whose namespace was not found, SOCK_DESTROY refused by the kernel. */
struct plain_sweep_problems {
	uint64_t netns_not_found, destroy_unsupported, destroy_failed;
};

/*
 * xmesh_authz_plaintext_closed_total{namespace,pod,port,policy}: one series per count, named as
 * xmesh_authz_plaintext_denied_total names its series; STRICT closes carry policy "strict". And
 * xmesh_authz_plaintext_close_failures_total{reason}: netns_not_found (pods), destroy_unsupported and
 * destroy_failed (connections).
 */
int authz_plain_closed_metrics_collect(const struct plain_close_count *v, size_t n,
				       const struct plain_sweep_problems *p, const struct xm_snapshot *snap,
				       struct xm_scrape *sc);

#endif
