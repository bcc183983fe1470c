/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who an address is: pod IP → namespace, workload (Istio's canonical name) and SPIFFE principal, built
 * from the Pods of each applied config. Labels Istio's metrics on both ends of a connection.
 */
#ifndef XMESH_COMPILE_IDENTITY_H
#define XMESH_COMPILE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "config/model.h"

/* A pod as L7 routing (sourceLabels) and Istio's request metrics see it; one per Pod. */
struct xm_workload {
	char ns[64];
	char pod[XM_NAME_MAX];
	char name[XM_NAME_MAX];		       /* Istio's workload name (identity_workload_name) */
	char app[XM_LABEL_MAX];		       /* label app, "unknown" when absent (Istio's source_app) */
	char version[XM_LABEL_MAX];	       /* label version, "unknown" when absent */
	char canonical_service[XM_LABEL_MAX];  /* service.istio.io/canonical-name, app.kubernetes.io/name, app, workload
						*/
	char canonical_revision[XM_LABEL_MAX]; /* service.istio.io/canonical-revision, app.kubernetes.io/version,
						  version, "latest" */
	char service_account[XM_NAME_MAX];
	char node[XM_NAME_MAX];	   /* spec.nodeName: the agent of that node mints this pod's certificate */
	char region[XM_LABEL_MAX]; /* locality: label istio-locality, else its Node's topology labels; "" unknown */
	char zone[XM_LABEL_MAX];
	char principal[64 + 2 * XM_NAME_MAX + 256]; /* spiffe://TRUST_DOMAIN/ns/NS/sa/SA */
	struct xm_label *labels;		    /* a copy of the Pod's labels, sorted by key */
	size_t n_labels;
};

struct xm_identity {
	union xm_addr addr;
	uint8_t family;
	char ns[64];
	char workload[XM_NAME_MAX];
	char principal[64 + 2 * XM_NAME_MAX + 256]; /* spiffe://TRUST_DOMAIN/ns/NS/sa/SA */
	const struct xm_workload *wl;		    /* the pod this address belongs to */
};

struct xm_identities {
	struct xm_identity *items; /* sorted by (family, addr) */
	size_t n;
	struct xm_workload *workloads; /* one per Pod, in config order */
	size_t n_workloads;
};

/* Replaces ids with the Pods of cfg; principals in trust_domain (NULL: cluster.local). 0 or -ENOMEM (ids unchanged). */
int identities_build(const struct xm_config *cfg, const char *trust_domain, struct xm_identities *ids);
void identities_free(struct xm_identities *ids);
const struct xm_identity *identities_find(const struct xm_identities *ids, const union xm_addr *addr, uint8_t family);

/* Istio's workload name of a pod: the canonical-name labels, else its name without the ReplicaSet suffixes. */
void identity_workload_name(const struct xm_pod *pod, char *buf, size_t len);
/* The value of label key of w, or NULL. */
const char *workload_label(const struct xm_workload *w, const char *key);

#endif
