/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plain netlink request and its answers, without libnl: what the sweep of plaintext connections asks of
 * NETLINK_SOCK_DIAG and NETLINK_ROUTE on its own thread, inside other network namespaces (a netlink socket
 * belongs to the namespace it was created in).
 */
#ifndef XMESH_DATAPATH_NL_RAW_H
#define XMESH_DATAPATH_NL_RAW_H

#include <linux/netlink.h>
#include <stddef.h>

/* A netlink socket of protocol in the calling thread's network namespace, or -errno. */
int nl_raw_open(int protocol);

/* Called per answer message (not DONE, not an error); a non-zero return stops the walk and is returned. */
typedef int (*nl_raw_fn)(const struct nlmsghdr *nh, void *arg);

/*
 * Sends the request (a whole message, nlmsg_len set; its sequence number is set here) and reads the answers
 * until NLMSG_DONE, the ACK (NLMSG_ERROR 0) or the answer to a request that is neither a dump nor asks an
 * ACK. Returns 0, the kernel's -errno, or fn's stop value.
 */
int nl_raw_request(int fd, struct nlmsghdr *req, nl_raw_fn fn, void *arg);

/* The attribute of type in [attrs, attrs + len), or NULL. */
const struct nlattr *nl_raw_attr(const void *attrs, size_t len, int type);

#endif
