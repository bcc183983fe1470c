// SPDX-License-Identifier: Apache-2.0
#include "datapath/sock_ends.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

int sock_ends_addr_of(const struct sockaddr_storage *ss, union xm_addr *a, uint16_t *port, uint8_t *family)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		a->v4 = s4->sin_addr.s_addr;
		*port = s4->sin_port;
		*family = XM_FAMILY_V4;
		return 0;
	}
	if (ss->ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	*port = s6->sin6_port;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(&a->v4, &s6->sin6_addr.s6_addr[12], 4);
		*family = XM_FAMILY_V4;
		return 0;
	}
	memcpy(a->bytes, s6->sin6_addr.s6_addr, 16);
	*family = XM_FAMILY_V6;
	return 0;
}

int sock_ends_of(int fd, union xm_addr *local, uint16_t *lport, union xm_addr *remote, uint16_t *rport, uint8_t *family)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);
	uint8_t lf, rf;
	int err;

	if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 || getpeername(fd, (struct sockaddr *)&r, &rl) < 0)
		return -errno;
	err = sock_ends_addr_of(&l, local, lport, &lf);
	if (!err)
		err = sock_ends_addr_of(&r, remote, rport, &rf);
	if (err)
		return err;
	if (lf != rf)
		return -EAFNOSUPPORT;
	*family = lf;
	return 0;
}
