/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The L7 proxy's own cgroup: where its listening sockets are made (l7_capture_socket_in_cgroup) so that
 * sockmap's sockops, attached there, puts every accepted socket in the sockhash at connection setup.
 */
#ifndef XMESH_DATAPATH_L7_PROXY_CGROUP_H
#define XMESH_DATAPATH_L7_PROXY_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The proxy cgroup for the served cgroup: its sibling "<cgroup>-l7-proxy", or, when the served cgroup is a
 * hierarchy's root (its parent is no cgroup), the child "<cgroup>/xmesh-l7-proxy". Never the root itself.
 * -ENAMETOOLONG when it does not fit in len.
 */
int l7_proxy_cgroup_path(const char *served, char *buf, size_t len);

/*
 * Whether the proxy cgroup lies below the served one: sockops attached to the served cgroup already runs
 * for its sockets (inherited), and attaching it there too would run it twice.
 */
bool l7_proxy_cgroup_inherits(const char *served, const char *proxy);

/* Makes the cgroup (an existing one is fine). 0 or a negative errno. */
int l7_proxy_cgroup_create(const char *path);

/*
 * Removes the proxy cgroup of the served cgroup (xmesh cleanup, --detach-on-exit): 0 when it is gone or was
 * never made. It holds no process, only sockets, which keep it alive in the kernel until they close.
 */
int l7_proxy_cgroup_remove(const char *served);

#endif
