/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PeerAuthentication STRICT as the agent sees it: loads bpf/peer_auth.bpf.c with its maps pinned, attaches it
 * at TC egress of every veth of the agent's network namespace (the pods' host-side ends; the uplinks given
 * with --iface are left out) and of those that appear later, keeps xm_mtls_policy equal to the compiled
 * table, and reads the rejection counters. docs/mtls.md says why this hook.
 */
#ifndef XMESH_DATAPATH_PEER_AUTH_H
#define XMESH_DATAPATH_PEER_AUTH_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/mtls.h>

#include "compile/authz_plain.h"
#include "compile/peer_auth.h"

#define XM_PA_TC_HANDLE	  0x786e
#define XM_PA_TC_PRIORITY 0x786e
#define XM_PA_MAX_IFACES  4096

struct peer_auth;

struct xm_peer_auth_dp {
	struct peer_auth *skel;
	char bpffs[4096];
	char exclude[16][IF_NAMESIZE]; /* --iface uplinks */
	size_t n_exclude;
	int attached[XM_PA_MAX_IFACES]; /* ifindexes with our filter */
	size_t n_attached;
	int skipped[XM_PA_MAX_IFACES]; /* ifindexes looked at that are not veths (or excluded) */
	size_t n_skipped;
	size_t n_entries;	/* entries in xm_mtls_policy after the last sync */
	size_t n_authz_entries; /* entries in xm_authz_plain after the last sync */
};

/* Loads and pins; attaches nothing yet (peer_auth_dp_scan). Returns 0 or -errno (logged). */
int peer_auth_dp_open(struct xm_peer_auth_dp *d, const char *bpffs, const char *const *exclude, size_t n_exclude);

/* Attaches to veths not seen before; forgets gone ones. Returns how many it attached now, or -errno. */
int peer_auth_dp_scan(struct xm_peer_auth_dp *d);

/*
 * Makes xm_mtls_policy hold next: new and changed entries first, removed ones last, so each (pod, port) turns
 * from its old mode to its new one in one map update. old NULL: the map's content is unknown (a restart,
 * a failed sync): every key not in next is deleted. Returns 0 or -EIO (logged; the next sync must be whole).
 */
int peer_auth_dp_sync(struct xm_peer_auth_dp *d, const struct xm_mtls_table *old, const struct xm_mtls_table *next);

/*
 * Makes xm_mtls_local_pods hold the pod addresses of next (XM_LOCAL_IP_POD): same-node mesh traffic. old
 * NULL: unknown content, every other key is deleted. Returns 0 or -EIO.
 */
struct xm_local_addrs;
int peer_auth_dp_sync_local(struct xm_peer_auth_dp *d, const struct xm_local_addrs *old,
			    const struct xm_local_addrs *next);

/*
 * Makes xm_authz_plain hold next (AuthorizationPolicy for plaintext clients), in the same order as
 * peer_auth_dp_sync. old NULL: unknown content. Returns 0 or -EIO (logged; the next sync must be whole).
 */
int peer_auth_dp_sync_authz(struct xm_peer_auth_dp *d, const struct xm_authz_plain_table *old,
			    const struct xm_authz_plain_table *next);

/* The fd of xm_mtls_rejected, or -1. */
int peer_auth_dp_rejected_fd(const struct xm_peer_auth_dp *d);

/* The fd of xm_authz_plain_denied, or -1. */
int peer_auth_dp_authz_denied_fd(const struct xm_peer_auth_dp *d);

void peer_auth_dp_close(struct xm_peer_auth_dp *d);

/*
 * `xmesh cleanup`: detaches our filter from the interfaces recorded in bpffs's xm_mtls_ifaces that exist in
 * this namespace (only a filter named xm_peer_auth at our handle; pins go with the directory).
 */
int peer_auth_dp_remove(const char *bpffs);

#endif
