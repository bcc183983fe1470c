// SPDX-License-Identifier: Apache-2.0
#include "datapath/hbone_capture.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "datapath/mtls_map.h"
#include "datapath/sock_ends.h"

int hbone_capture_set_proxy(int proxy_map_fd, const struct l7_capture_proxy *listener)
{
	/* The same array layout as the L7 proxy's: one listener per family. */
	return l7_capture_set_proxy(proxy_map_fd, listener);
}

int hbone_capture_sync(int dsts_map_fd, const struct xm_mtls_table *old, const struct xm_mtls_table *next)
{
	return mtls_map_sync(dsts_map_fd, "xm_hbone_dsts", old, next);
}

static void sockaddr_of(struct sockaddr_storage *ss, uint8_t family, const union xm_addr *a, uint16_t port)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == XM_FAMILY_V4) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = a->v4;
		s4->sin_port = port;
		return;
	}
	s6->sin6_family = AF_INET6;
	memcpy(&s6->sin6_addr, a->v6, sizeof(s6->sin6_addr));
	s6->sin6_port = port;
}

int hbone_capture_lookup(int origdst_fd, int accepted_fd, struct hbone_captured *out)
{
	struct xm_l7_origdst_key k;
	struct xm_hbone_origdst v;
	int err;

	memset(&k, 0, sizeof(k));
	err = sock_ends_of(accepted_fd, &k.proxy, &k.proxy_port, &k.client, &k.client_port, &k.family);
	if (err)
		return err;
	if (k.family != XM_FAMILY_V4 && k.family != XM_FAMILY_V6)
		return -ENOENT;
	/* Taken out in the same call: each entry answers exactly one accepted connection. */
	if (bpf_map_lookup_and_delete_elem(origdst_fd, &k, &v) < 0)
		return -errno;
	/* The kernel writes the 4-tuple's family (tunnels do not cross families). */
	if (v.family != k.family)
		return -EPROTO;
	sockaddr_of(&out->target, v.family, &v.target, v.tport);
	sockaddr_of(&out->dialed, v.family, &v.vip, v.vport);
	sockaddr_of(&out->client, k.family, &k.client, k.client_port);
	out->svc_id = v.svc_id;
	out->netns = v.netns;
	return 0;
}
