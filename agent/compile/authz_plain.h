/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AuthorizationPolicy for plaintext connections to local pods, compiled for the kernel's xm_authz_plain LPM
 * trie (include/xmesh/mtls.h, docs/mtls.md "Plaintext: the kernel"): what authz_evaluate decides for a client
 * without an identity (ztunnel's inbound passthrough), and for a pod of this node whose identity it knows.
 *
 * Representation. For one local pod address D, the verdict depends on the client only through which source
 * CIDRs (ipBlocks, notIpBlocks, source.ip of the policies applying to D) contain its address, and on the port
 * only through which named ports (ports, notPorts, destination.port) it equals. Port classes are the named
 * ports plus port 0 for every other port (evaluated with the smallest port nobody names). CIDRs nest or are
 * disjoint, so the set of CIDRs containing an address is fixed by the longest of them that does: one entry per
 * CIDR c (and /0), evaluated at an address inside c but outside every longer CIDR, gives the kernel's longest
 * prefix match the exact answer. A CIDR fully covered by longer ones gets no entry (no address ends there).
 * A local pod P gets its own /32 (/128) entry where its identity changes the answer (deny_local/policy_local,
 * evaluated with P's principal); where it does not, the CIDR entry holding P already answers (its _local
 * fields equal the no-identity ones).
 *
 * Pruning (exact, never partial): a named port class whose entries equal port 0's is left out (the kernel
 * falls back to port 0); a pod address none of whose entries denies anything gets no entries at all (the
 * kernel allows a pod without entries). Within a class no CIDR entry is dropped: a missing one would let a
 * shorter prefix, or port 0, answer.
 *
 * Bound: at most XM_MAX_AUTHZ_PLAIN entries. Past it authz_plain_build returns -E2BIG (and logs how many were
 * needed): the caller keeps enforcing the previous table rather than a truncated one. The build costs
 * pods * (named ports + 1) * (CIDRs + 1 + distinct (CIDR, principal) pairs of local pods) authz_evaluate calls:
 * a local pod's answer without identity is its CIDR's, and with one it is asked once per (CIDR, principal),
 * never when no applying policy names principals, namespaces or service accounts. 100 local pods of 7 service
 * accounts, 10 policies, 5 CIDRs, 4 ports: 8,800 entries in 6-11 ms, against 47-83 ms asking every pod twice
 * (unit authz_plain/build_time_*, both builds alternating in one session).
 */
#ifndef XMESH_COMPILE_AUTHZ_PLAIN_H
#define XMESH_COMPILE_AUTHZ_PLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/mtls.h>

#include "compile/authz.h"
#include "compile/identity.h"

struct xm_authz_plain_entry {
	struct xm_authz_plain_key key;
	struct xm_authz_plain_verdict val;
};

struct xm_authz_plain_table {
	struct xm_authz_plain_entry *items; /* sorted by key (memcmp), keys unique */
	size_t n;
	/* Bit b set: some entry has a client prefix of b bits (0..128), so a lookup tries only those lengths. */
	uint64_t src_bits[3];
};

/* FNV-1a 32 of "ns/name", never XM_AUTHZ_POLICY_NO_ALLOW (0 becomes 1): the id the kernel counts denials by. */
uint32_t authz_policy_id(const char *ns, const char *name);

/*
 * The table for the pods of node (workloads whose node is it; NULL: none) and their addresses in ids, under
 * the policies of authz; trust_domain as for authz_evaluate. 0, -ENOMEM or -E2BIG (more than XM_MAX_AUTHZ_PLAIN
 * entries needed; logged): out is then empty. out is overwritten, not freed.
 */
int authz_plain_build(const struct xm_identities *ids, const struct xm_authz_table *authz, const char *node,
		      const char *trust_domain, struct xm_authz_plain_table *out);
void authz_plain_free(struct xm_authz_plain_table *t);
const struct xm_authz_plain_entry *authz_plain_find(const struct xm_authz_plain_table *t,
						    const struct xm_authz_plain_key *key);

/*
 * What the kernel's lookup answers for a client at client (family XM_FAMILY_*) reaching pod:port: the longest
 * client prefix among the (pod, port) entries, else among the (pod, 0) ones, else allowed. from_local_pod: the
 * client is a mesh pod of this node (deny_local/policy_local). Returns true when denied, with the policy id to
 * count in *policy (authz_policy_id, or XM_AUTHZ_POLICY_NO_ALLOW).
 */
bool authz_plain_judge(const struct xm_authz_plain_table *t, uint8_t family, const union xm_addr *pod, uint16_t port,
		       const union xm_addr *client, bool from_local_pod, uint32_t *policy);

/*
 * The name of policy id: "ns/name" of a DENY policy of t with that id (in buf), "allow-not-matched" for
 * XM_AUTHZ_POLICY_NO_ALLOW, NULL when no DENY policy of t has it.
 */
const char *authz_plain_policy_name(const struct xm_authz_table *t, uint32_t id, char *buf, size_t len);

#endif
