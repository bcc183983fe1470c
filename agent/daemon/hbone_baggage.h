/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the HBONE client says about the source workload in its CONNECT, as ztunnel does (docs/mtls.md "The
 * client side"): the baggage of a pod of this node, and the hostname of the Service it dialled.
 */
#ifndef XMESH_DAEMON_HBONE_BAGGAGE_H
#define XMESH_DAEMON_HBONE_BAGGAGE_H

#include <stddef.h>

struct xm_lb_service;
struct xm_workload;

#define XM_DEFAULT_CLUSTER_ID "Kubernetes" /* Istio's CLUSTER_ID when none is set */

/*
 * Istio's workload kind and name of a pod (istiod's GetDeployMetaFromPod and workloadNameAndType), from its
 * labels, since the config keeps no ownerReferences: pod-template-hash and a name "<deployment>-<hash>-<x>"
 * make a Deployment; a job-name label a Job, or a CronJob when it ends in -<8 to 10 digits> (the CronJob's
 * name is before that); anything else is the Pod itself. Returns the kind ("deployment", "job", "cronjob",
 * "pod"), the name in name.
 */
const char *workload_kind_name(const struct xm_workload *w, char *name, size_t len);

/* ztunnel's baggage of w in cluster (hbone_format_baggage): its length, or a negative errno (buf ""). */
int workload_baggage(const struct xm_workload *w, const char *cluster, char *buf, size_t len);

/* "<name>.<namespace>.svc.cluster.local": the hostname Forwarded's host= names. Its length or -ENAMETOOLONG. */
int service_hostname(const struct xm_lb_service *svc, char *buf, size_t len);

#endif
