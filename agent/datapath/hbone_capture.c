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
	/* The same array layout as the L7 proxy's; the connect hook reads only the IPv4 half today. */
	return l7_capture_set_proxy(proxy_map_fd, listener);
}

int hbone_capture_sync(int dsts_map_fd, const struct xm_mtls_table *old, const struct xm_mtls_table *next)
{
	return mtls_map_sync(dsts_map_fd, "xm_hbone_dsts", old, next);
}

static void sockaddr4(struct sockaddr_storage *ss, const union xm_addr *a, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = a->v4;
	s4->sin_port = port;
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
	/* Only IPv4 is captured: an IPv6 connection cannot have an entry. */
	if (k.family != XM_FAMILY_V4)
		return -ENOENT;
	/* Taken out in the same call: each entry answers exactly one accepted connection. */
	if (bpf_map_lookup_and_delete_elem(origdst_fd, &k, &v) < 0)
		return -errno;
	if (v.family != XM_FAMILY_V4)
		return -EPROTO;
	sockaddr4(&out->target, &v.target, v.tport);
	sockaddr4(&out->dialed, &v.vip, v.vport);
	sockaddr4(&out->client, &k.client, k.client_port);
	out->svc_id = v.svc_id;
	out->netns = v.netns;
	return 0;
}
