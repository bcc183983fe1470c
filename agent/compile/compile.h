/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compiles the config model into what the datapath serves: one entry per (ClusterIP, port, protocol)
 * with its ready backends resolved to IP:targetPort and its load-balancing algorithm. Pure: no maps.
 */
#ifndef XMESH_COMPILE_H
#define XMESH_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "config/model.h"

struct xm_lb_backend {
	union xm_addr addr;
	uint16_t port; /* host order */
	uint8_t family;
	bool ready;
	bool local;			/* EndpointSlice nodeName is this node */
	union xm_addr node_addr;	/* the node's InternalIP of the backend's family; zero if unknown */
	char pod[64 + XM_NAME_MAX + 1]; /* "ns/name" from targetRef, "" when absent */
	char node[XM_NAME_MAX];
	uint32_t id; /* lbmap's backend id, assigned when the state is published; 0 before */
};

struct xm_lb_service {
	char ns[64];
	char name[XM_NAME_MAX];
	char port_name[64];
	struct xm_svc_key key; /* network order, as the datapath keys it */
	uint32_t svc_id;       /* lbmap's id, assigned when the state is published; 0 before or if not served */
	uint32_t outlier_id;   /* key of its outlier state, shared by the Service port's VIPs; assigned with svc_id */
	uint8_t algo;	       /* enum xm_lb_algo */
	uint8_t flags;	       /* XM_SVC_F_* */
	uint32_t maglev_size;  /* table size when algo is MAGLEV */
	bool outlier_on;       /* the DestinationRule has outlierDetection */
	struct xm_outlier_detection outlier;
	struct xm_lb_backend *backends; /* sorted by (family, addr, port); ready and not ready */
	size_t n_backends;
	size_t n_ready;
};

struct xm_lb_state {
	struct xm_lb_service *services; /* sorted by key */
	size_t n_services;
};

struct xm_compile_opts {
	const char *node_name;	    /* --node; NULL: nothing is local */
	uint32_t maglev_size;	    /* default Maglev table size (prime) */
	const char *trust_domain;   /* --trust-domain of the principals in identities; NULL: cluster.local */
	const char *root_namespace; /* --root-namespace: mesh-wide PeerAuthentication; NULL: istio-system */
};

/* Returns 0 or -ENOMEM. Problems that validation lets through are logged as warnings. */
int compile_lb(const struct xm_config *cfg, const struct xm_compile_opts *opts, struct xm_lb_state *out);
void lb_state_free(struct xm_lb_state *st);

/* "10.96.0.10:80/TCP" or "[fd00::1]:80/UDP" */
void lb_format_key(const struct xm_svc_key *key, char *buf, size_t len);
const char *lb_algo_name(uint8_t algo);
/* "10.200.1.2:8080" or "[fd00::2]:8080" */
void lb_format_backend(const struct xm_lb_backend *b, char *buf, size_t len);

#endif
