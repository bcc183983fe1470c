// SPDX-License-Identifier: Apache-2.0
#include "datapath/peer_auth.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compile/local_addrs.h"
#include "core/log.h"
#include "datapath/bpf_loader.h"
#include "datapath/map_sync.h"
#include "datapath/mtls_map.h"
#include "datapath/pins.h"
#include "datapath/tc_egress.h"
#include "skel/peer_auth.skel.h"

XM_BPF_SKEL_OPS(peer_auth);

int peer_auth_dp_open(struct xm_peer_auth_dp *d, const char *bpffs, const char *const *exclude, size_t n_exclude)
{
	int err;

	memset(d, 0, sizeof(*d));
	snprintf(d->bpffs, sizeof(d->bpffs), "%s", bpffs);
	for (size_t i = 0; i < n_exclude && d->n_exclude < sizeof(d->exclude) / sizeof(d->exclude[0]); i++)
		snprintf(d->exclude[d->n_exclude++], IF_NAMESIZE, "%s", exclude[i]);
	d->skel = bpf_loader_open(&peer_auth_skel_ops, bpffs, "PeerAuthentication STRICT needs TC BPF", &err);
	return d->skel ? 0 : err;
}

static bool is_veth(int sock, const char *name)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_data = (void *)&info;
	return ioctl(sock, SIOCETHTOOL, &ifr) == 0 && !strcmp(info.driver, "veth");
}

static bool listed(const int *v, size_t n, int x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static const struct tc_egress_filter pa_filter = { .handle = XM_PA_TC_HANDLE,
						   .priority = XM_PA_TC_PRIORITY,
						   .prog_name = "xm_peer_auth" };

static int attach_tc(struct xm_peer_auth_dp *d, int ifindex, const char *name)
{
	const char *step = "";
	int err = tc_egress_attach(&pa_filter, ifindex, bpf_program__fd(d->skel->progs.xm_peer_auth), &step);

	if (err)
		log_warn("peerauthentication: %s: %s: %s", name, step, strerror(-err));
	return err;
}

/* Drops ifindexes that no longer exist (a pod gone takes its veth, and our filter, with it). */
static void forget_gone(int *v, size_t *n, const struct if_nameindex *ifs, int record_fd)
{
	size_t j = 0;

	for (size_t i = 0; i < *n; i++) {
		bool present = false;

		for (const struct if_nameindex *p = ifs; p->if_index && !present; p++)
			present = (int)p->if_index == v[i];
		if (present) {
			v[j++] = v[i];
		} else if (record_fd >= 0) {
			__u32 k = (__u32)v[i];

			bpf_map_delete_elem(record_fd, &k);
		}
	}
	*n = j;
}

int peer_auth_dp_scan(struct xm_peer_auth_dp *d)
{
	struct if_nameindex *ifs = if_nameindex();
	int sock, n = 0;

	if (!ifs)
		return -errno;
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		if_freenameindex(ifs);
		return -errno;
	}
	forget_gone(d->attached, &d->n_attached, ifs, bpf_map__fd(d->skel->maps.xm_mtls_ifaces));
	forget_gone(d->skipped, &d->n_skipped, ifs, -1);
	for (const struct if_nameindex *p = ifs; p->if_index; p++) {
		int idx = (int)p->if_index;
		bool excluded = false;

		if (listed(d->attached, d->n_attached, idx) || listed(d->skipped, d->n_skipped, idx))
			continue;
		for (size_t i = 0; i < d->n_exclude && !excluded; i++)
			excluded = !strcmp(d->exclude[i], p->if_name);
		if (excluded || !is_veth(sock, p->if_name) || d->n_attached == XM_PA_MAX_IFACES) {
			if (d->n_skipped < XM_PA_MAX_IFACES)
				d->skipped[d->n_skipped++] = idx;
			continue;
		}
		/* A veth that vanished meanwhile fails here; the next scan forgets it. */
		if (attach_tc(d, idx, p->if_name))
			continue;
		d->attached[d->n_attached++] = idx;
		{
			__u32 k = (__u32)idx, one = 1;

			bpf_map_update_elem(bpf_map__fd(d->skel->maps.xm_mtls_ifaces), &k, &one, BPF_ANY);
		}
		n++;
		log_debug("peerauthentication: TC egress on %s", p->if_name);
	}
	close(sock);
	if_freenameindex(ifs);
	return n;
}

int peer_auth_dp_sync(struct xm_peer_auth_dp *d, const struct xm_mtls_table *old, const struct xm_mtls_table *next)
{
	int err = mtls_map_sync(bpf_map__fd(d->skel->maps.xm_mtls_policy), "xm_mtls_policy", old, next);

	d->n_entries = next->n;
	return err;
}

static int lkey_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_local_ip_key));
}

/* Is lk a pod address of s (keys sorted by memcmp, flags alongside)? */
static bool has_pod(const struct xm_local_addrs *s, const struct xm_local_ip_key *lk)
{
	const struct xm_local_ip_key *at = s && s->n ? bsearch(lk, s->keys, s->n, sizeof(*lk), lkey_cmp) : NULL;

	return at && (s->flags[at - s->keys] & XM_LOCAL_IP_POD);
}

int peer_auth_dp_sync_local(struct xm_peer_auth_dp *d, const struct xm_local_addrs *old,
			    const struct xm_local_addrs *next)
{
	int fd = bpf_map__fd(d->skel->maps.xm_mtls_local_pods), err = 0;
	struct xm_mtls_key k, nk, *prev = NULL;
	__u32 one = 1;

	for (size_t i = 0; i < next->n; i++) {
		if (!(next->flags[i] & XM_LOCAL_IP_POD) || has_pod(old, &next->keys[i]))
			continue;
		memset(&k, 0, sizeof(k));
		k.addr = next->keys[i].addr;
		k.family = next->keys[i].family;
		if (bpf_map_update_elem(fd, &k, &one, BPF_ANY))
			err = -EIO;
	}
	/* Removals: walk the map (one key per local pod address). */
	while (bpf_map_get_next_key(fd, prev, &nk) == 0) {
		struct xm_local_ip_key lk;

		k = nk;
		prev = &k;
		memset(&lk, 0, sizeof(lk));
		lk.addr = k.addr;
		lk.family = k.family;
		if (has_pod(next, &lk))
			continue;
		if (bpf_map_delete_elem(fd, &k) && errno != ENOENT)
			err = -EIO;
		prev = NULL;
	}
	return err;
}

static struct map_sync_table authz_view(const struct xm_authz_plain_table *t)
{
	return (struct map_sync_table){ .items = t->items,
					.n = t->n,
					.stride = sizeof(struct xm_authz_plain_entry),
					.key_len = sizeof(struct xm_authz_plain_key),
					.val_off = offsetof(struct xm_authz_plain_entry, val),
					.val_len = sizeof(struct xm_authz_plain_verdict) };
}

int peer_auth_dp_sync_authz(struct xm_peer_auth_dp *d, const struct xm_authz_plain_table *old,
			    const struct xm_authz_plain_table *next)
{
	struct map_sync_table o = old ? authz_view(old) : (struct map_sync_table){ 0 }, n = authz_view(next);
	int err = map_sync(bpf_map__fd(d->skel->maps.xm_authz_plain), "xm_authz_plain", old ? &o : NULL, &n);

	d->n_authz_entries = next->n;
	return err;
}

int peer_auth_dp_authz_denied_fd(const struct xm_peer_auth_dp *d)
{
	return d->skel ? bpf_map__fd(d->skel->maps.xm_authz_plain_denied) : -1;
}

int peer_auth_dp_rejected_fd(const struct xm_peer_auth_dp *d)
{
	return d->skel ? bpf_map__fd(d->skel->maps.xm_mtls_rejected) : -1;
}

void peer_auth_dp_close(struct xm_peer_auth_dp *d)
{
	peer_auth__destroy(d->skel);
	d->skel = NULL;
}

static int detach_tc(int ifindex, const char *name)
{
	int err = tc_egress_detach_ours(&pa_filter, ifindex);

	if (err)
		log_error("%s: detach PeerAuthentication TC egress: %s", name, strerror(-err));
	return err;
}

int peer_auth_dp_remove(const char *bpffs)
{
	return pins_each_iface(bpffs, "xm_mtls_ifaces", detach_tc);
}
