/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Steering of inbound HBONE (TCP port 15008 to a pod IP of this node) to the agent's listener, in the kernel
 * and without iptables: a policy routing rule "iif UPLINK ipproto tcp dport 15008 lookup 15008" and, in
 * table 15008, "local 0.0.0.0/0 dev lo"; the same for IPv6 ("ip -6 rule", "local ::/0 dev lo"). Such a packet
 * is delivered locally instead of being forwarded to the pod, and the agent's socket listening on [::]:15008
 * (dual-stack) accepts it with the pod's IP as its local address.
 * docs/mtls.md "Wiring: the server side" says why this hook and not sk_lookup or bpf_sk_assign alone.
 */
#ifndef XMESH_DATAPATH_HBONE_STEER_H
#define XMESH_DATAPATH_HBONE_STEER_H

#include <stddef.h>

#define XM_HBONE_STEER_TABLE 15008 /* the routing table holding the local default route */
#define XM_HBONE_STEER_PRIO  15008 /* the rule's priority: before "main" (32766) */

/*
 * Installs the routes and one rule per uplink and family, keeping a rule a previous run left (no moment
 * without it across a restart); a host without IPv6 gets the IPv4 ones only. 0 or a negative errno.
 */
int hbone_steer_install(const char *const *ifaces, size_t n);
/* Removes them (what is already gone is fine). */
void hbone_steer_remove(const char *const *ifaces, size_t n);
/*
 * The same removal, both families, as rtnetlink requests (no ACK asked) written back to back into buf, for a
 * process that may only make system calls (a listener holder, daemon/listen_handover.h). Returns their length
 * or -ENOSPC/-ENOMEM.
 */
int hbone_steer_removal(const char *const *ifaces, size_t n, void *buf, size_t cap);

#endif
