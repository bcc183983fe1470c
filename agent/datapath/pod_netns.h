/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network namespaces of this node's pods, found without any privilege beyond opening them: each pod's
 * veth in the agent's namespace names its peer's namespace by an id (IFLA_LINK_NETNSID) that only the
 * agent's namespace knows; the namespace files a runtime leaves under /run/netns (CRI: cni-*; `ip netns add`)
 * are asked for their id as the agent's namespace numbers them (RTM_GETNSID with NETNSA_FD), and those whose
 * id a link names are kept. Must be called on a thread still in the agent's namespace.
 */
#ifndef XMESH_DATAPATH_POD_NETNS_H
#define XMESH_DATAPATH_POD_NETNS_H

#include <stddef.h>
#include <stdint.h>

struct pod_netns {
	int fd; /* the namespace, open (setns) */
	int32_t nsid;
	char name[64]; /* its file's name, for the log */
};

/*
 * Opens the namespaces under dirs (NULL-terminated list of directories; one missing is no error) that are the
 * peer of a link of the calling thread's namespace, each once. Returns how many (*out malloc'd, NULL when
 * none) or -errno (listing the links failed).
 */
long pod_netns_find(const char *const *dirs, struct pod_netns **out);
void pod_netns_close(struct pod_netns *v, size_t n);

#endif
