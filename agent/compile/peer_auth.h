/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PeerAuthentication resolved the way Istio composes it (workload selector > namespace > mesh-wide in the
 * root namespace; the oldest of one level wins; UNSET inherits; PERMISSIVE when nothing applies), and the
 * table the kernel enforces: the mode of every STRICT-bearing local pod IP and port (xm_mtls_policy).
 */
#ifndef XMESH_COMPILE_PEER_AUTH_H
#define XMESH_COMPILE_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/mtls.h>

#include "config/model.h"

#define XM_DEFAULT_ROOT_NAMESPACE "istio-system"

struct xm_pa_effective {
	enum xm_mtls_mode mode;		  /* the workload's, resolved: never UNSET */
	const struct xm_port_mtls *ports; /* the workload policy's portLevelMtls (sorted; UNSET inherits mode) */
	size_t n_ports;
	/* The policies that applied at each level, NULL where none did. */
	const struct xm_peer_authentication *workload, *ns, *mesh;
};

/*
 * The effective policy of a workload in namespace ns with these labels. root_ns: --root-namespace (NULL:
 * istio-system). out points into cfg.
 */
void peer_auth_resolve(const struct xm_config *cfg, const char *root_ns, const char *ns, const struct xm_label *labels,
		       size_t n_labels, struct xm_pa_effective *out);

/* The mode of port under e: its port-level mode, else the workload's. */
enum xm_mtls_mode peer_auth_port_mode(const struct xm_pa_effective *e, uint16_t port);

const char *peer_auth_mode_name(enum xm_mtls_mode m);

struct xm_mtls_entry {
	struct xm_mtls_key key;
	struct xm_mtls_policy val;
};

/* What xm_mtls_policy holds: entries of local pods with at least one STRICT port, sorted by key (memcmp). */
struct xm_mtls_table {
	struct xm_mtls_entry *items;
	size_t n;
};

/* Pods of node (NULL or "": none) in cfg. Returns 0 or -ENOMEM (out empty). */
int mtls_table_build(const struct xm_config *cfg, const char *node, const char *root_ns, struct xm_mtls_table *out);
/*
 * The tunnel's client side: every address of every Pod on another node than node (spec.nodeName set and not
 * node), with the pod's resolved mode on (addr, 0) and each portLevelMtls port's on (addr, port). A
 * destination is tunnelled when its entry's mode is not DISABLE (Istio's auto-mTLS); an address without an
 * entry is no pod of another node and stays plaintext. Same key, order and size limit as the table above.
 * Returns 0 or -ENOMEM (out empty).
 */
int mtls_remote_build(const struct xm_config *cfg, const char *node, const char *root_ns, struct xm_mtls_table *out);
void mtls_table_free(struct xm_mtls_table *t);
/*
 * Whether a TCP connection to addr:port (port host order) goes through the HBONE tunnel, by remote
 * (mtls_remote_build): the address is a pod of another node and its mode for the port is not DISABLE —
 * the same decision as the connect hook's (include/xmesh/hbone.h). Port 15008 never is.
 */
bool mtls_remote_tunnelled(const struct xm_mtls_table *remote, const union xm_addr *addr, uint8_t family,
			   uint16_t port);
/* The entry with key k, or NULL. */
const struct xm_mtls_entry *mtls_table_find(const struct xm_mtls_table *t, const struct xm_mtls_key *k);
/* The entry that decides (addr, port): its own, else the address's port 0 (the pod's default), else NULL. */
const struct xm_mtls_entry *mtls_table_effective(const struct xm_mtls_table *t, const union xm_addr *addr,
						 uint8_t family, uint16_t port);

#endif
