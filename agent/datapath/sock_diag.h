/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TCP sockets of the calling thread's network namespace (NETLINK_SOCK_DIAG), and SOCK_DESTROY of one
 * (tcp_abort: its owner sees ECONNABORTED, the peer a reset; needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN
 * over the namespace).
 */
#ifndef XMESH_DATAPATH_SOCK_DIAG_H
#define XMESH_DATAPATH_SOCK_DIAG_H

#include <linux/inet_diag.h>
#include <stdint.h>

struct xm_diag_sock {
	uint8_t family; /* AF_INET or AF_INET6 as dumped (an AF_INET6 socket may hold v4-mapped addresses) */
	uint8_t state;	/* TCP_* */
	struct inet_diag_sockid id; /* as the kernel gave it, cookie included: what SOCK_DESTROY names */
};

/* Called per socket; non-zero stops the dump and is returned by it. */
typedef int (*sock_diag_fn)(const struct xm_diag_sock *s, void *arg);

/* fd: nl_raw_open(NETLINK_SOCK_DIAG). The TCP sockets of af in states (a mask of 1 << TCP_*). 0 or -errno. */
int sock_diag_dump_tcp(int fd, int af, uint32_t states, sock_diag_fn fn, void *arg);

/* Aborts the socket s names. 0, -ENOENT (gone), -EOPNOTSUPP (no CONFIG_INET_DIAG_DESTROY), -EPERM, ... */
int sock_diag_destroy_tcp(int fd, const struct xm_diag_sock *s);

#endif
