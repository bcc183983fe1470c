/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plaintext TCP connection to a local pod judged as bpf/peer_auth.bpf.c judges its SYN now: what the agent
 * asks of every established connection after a policy change, to close those the kernel would refuse
 * (docs/mtls.md "Closing what a change denies"). In order, as the kernel:
 *   1. a client at one of the node's own addresses is exempt (the kernel leaves the node's own traffic alone:
 *      no ingress interface; the agent's HBONE deliveries and the kubelet's probes are among it);
 *   2. STRICT (xm_mtls_policy: the port's entry, else the pod's port 0) refuses a client that is no mesh pod
 *      of this node;
 *   3. AuthorizationPolicy (xm_authz_plain, authz_plain_judge), with the _local verdict for a mesh pod of
 *      this node.
 */
#ifndef XMESH_COMPILE_PLAIN_JUDGE_H
#define XMESH_COMPILE_PLAIN_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/sockmap.h>

#include "compile/authz_plain.h"
#include "compile/local_addrs.h"
#include "compile/peer_auth.h"

enum plain_verdict {
	PLAIN_ALLOWED,
	PLAIN_NODE,   /* the client is the node itself: never judged */
	PLAIN_STRICT, /* refused by STRICT */
	PLAIN_DENIED, /* refused by AuthorizationPolicy; the policy id alongside */
};

/* What the kernel enforces now, and who is local. The tables are the snapshot's; node_ips is sorted. */
struct plain_rules {
	const struct xm_authz_plain_table *authz;
	const struct xm_mtls_table *mtls;
	const struct xm_local_addrs *local; /* XM_LOCAL_IP_POD: mesh pods of this node; XM_LOCAL_IP_NODE: the node */
	const struct xm_local_ip_key *node_ips; /* the node's interface addresses (getifaddrs), memcmp order */
	size_t n_node_ips;
};

/*
 * The verdict for a client at client reaching pod:port (family XM_FAMILY_*); *policy: the id to count under
 * PLAIN_DENIED (authz_policy_id or XM_AUTHZ_POLICY_NO_ALLOW), else 0.
 */
enum plain_verdict plain_judge(const struct plain_rules *r, uint8_t family, const union xm_addr *pod, uint16_t port,
			       const union xm_addr *client, uint32_t *policy);

/*
 * The pod addresses the kernel could refuse a plaintext client of (a STRICT port, or entries in the
 * AuthorizationPolicy table): sorted, unique, into *out (malloc'd; free it). Returns how many, or -ENOMEM.
 */
long plain_rules_pods(const struct plain_rules *r, struct xm_local_ip_key **out);

/*
 * Of the pods next guards (plain_rules_pods), those whose STRICT or AuthorizationPolicy entries differ from
 * old's (NULL: all): the only ones whose connections a change can newly refuse (an entry names its pod, and a
 * same-node client whose identity matters has a /32 entry of its own). Same contract as plain_rules_pods.
 */
long plain_rules_changed_pods(const struct plain_rules *old, const struct plain_rules *next,
			      struct xm_local_ip_key **out);

/* Whether k is in the sorted set of n keys. */
bool plain_pods_has(const struct xm_local_ip_key *set, size_t n, const struct xm_local_ip_key *k);

#endif
