/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connected socket's addresses as the BPF side keys them (struct xm_l7_origdst_key, the sockhash's key):
 * IPv4, also a v4-mapped IPv6 address, in .v4, ports in network order. Shared by the L7 and HBONE captures.
 */
#ifndef XMESH_DATAPATH_SOCK_ENDS_H
#define XMESH_DATAPATH_SOCK_ENDS_H

#include <stdint.h>
#include <sys/socket.h>

#include <xmesh/lb.h>

/* One socket address: -EAFNOSUPPORT unless AF_INET or AF_INET6. */
int sock_ends_addr_of(const struct sockaddr_storage *ss, union xm_addr *a, uint16_t *port, uint8_t *family);

/* A socket's two ends, local (getsockname) and remote (getpeername), of one family (else -EAFNOSUPPORT). */
int sock_ends_of(int fd, union xm_addr *local, uint16_t *lport, union xm_addr *remote, uint16_t *rport,
		 uint8_t *family);

#endif
