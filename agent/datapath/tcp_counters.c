// SPDX-License-Identifier: Apache-2.0
#include "datapath/tcp_counters.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/log.h"

#define READ_CHUNK 512 /* positions per batch lookup: bounded memory on machines with many CPUs */

/* All XM_XDP_TCP_SLOTS positions into sums: counters summed over the CPUs, the owner from CPU 0's copy. */
static int read_all(int fd, struct xm_xdp_tcp_metrics *sums)
{
	int ncpu = libbpf_num_possible_cpus();
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	__u32 keys[READ_CHUNK], in = 0, out = 0;
	struct xm_xdp_tcp_metrics *vals;
	void *inp = NULL;
	int err = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu * READ_CHUNK, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	memset(sums, 0, XM_XDP_TCP_SLOTS * sizeof(*sums));
	for (;;) {
		__u32 count = READ_CHUNK, i;
		int rc = bpf_map_lookup_batch(fd, inp, &out, keys, vals, &count, &o);

		if (rc && errno != ENOENT) {
			err = -errno;
			break;
		}
		for (i = 0; i < count; i++) {
			const struct xm_xdp_tcp_metrics *v = &vals[(size_t)i * (size_t)ncpu];
			struct xm_xdp_tcp_metrics *s;

			if (keys[i] >= XM_XDP_TCP_SLOTS)
				continue;
			s = &sums[keys[i]];
			s->svc_id = v[0].svc_id;
			s->backend_id = v[0].backend_id;
			for (int c = 0; c < ncpu; c++) {
				s->opened += v[c].opened;
				s->closed += v[c].closed;
				s->sent_bytes += v[c].sent_bytes;
				s->received_bytes += v[c].received_bytes;
			}
		}
		if (rc)
			break; /* ENOENT: the end */
		in = out;
		inp = &in;
	}
	free(vals);
	return err;
}

/* Every CPU's copy of position pos: zero counters, owned by the pair (0, 0: free). */
static int write_owner(int fd, __u32 pos, __u32 svc_id, __u32 backend_id)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	struct xm_xdp_tcp_metrics *v;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int c = 0; c < ncpu; c++) {
		v[c].svc_id = svc_id;
		v[c].backend_id = backend_id;
	}
	if (bpf_map_update_elem(fd, &pos, v, BPF_ANY) < 0)
		err = -errno;
	free(v);
	return err;
}

/* The position that the pair owns, or -1; free: the first free position on its probe path, or -1. */
static int probe(const struct xm_xdp_tcp_metrics *cur, __u32 svc_id, __u32 backend_id, int *free_pos)
{
	__u32 first = xm_xdp_tcp_slot(svc_id, backend_id);

	*free_pos = -1;
	for (__u32 i = 0; i < XM_XDP_TCP_PROBES; i++) {
		__u32 pos = (first + i) & (XM_XDP_TCP_SLOTS - 1);

		if (cur[pos].svc_id == svc_id && cur[pos].backend_id == backend_id)
			return (int)pos;
		if (!cur[pos].svc_id && *free_pos < 0)
			*free_pos = (int)pos;
	}
	return -1;
}

struct pair {
	__u32 svc_id, backend_id;
};

/* The (service port, local backend) pairs of st's external services, by the ids publishing assigned. */
static int wanted_pairs(const struct xm_lb_state *st, struct pair **out, size_t *n_out)
{
	struct pair *v = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];
		__u32 svc_id;

		if (!(s->flags & XM_SVC_F_EXTERNAL) || s->key.proto != IPPROTO_TCP || !(svc_id = s->svc_id))
			continue;
		for (size_t j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			__u32 backend_id;

			/* Ready or not: an unready backend's pinned flows still count. */
			if (!b->local || !(backend_id = b->id))
				continue;
			if (XM_GROW(v, cap, n + 1)) {
				free(v);
				return -ENOMEM;
			}
			v[n++] = (struct pair){ svc_id, backend_id };
		}
	}
	*out = v;
	*n_out = n;
	return 0;
}

int tcp_counters_sync(int fd, const struct xm_lb_state *st, struct tcp_counters_fill *fill)
{
	struct xm_xdp_tcp_metrics *cur = calloc(XM_XDP_TCP_SLOTS, sizeof(*cur));
	bool *keep = calloc(XM_XDP_TCP_SLOTS, sizeof(*keep));
	struct pair *want = NULL;
	size_t n_want = 0, unplaced = 0, placed = 0;
	int err = -ENOMEM, free_pos, pos;

	if (!cur || !keep || (err = wanted_pairs(st, &want, &n_want)) || (err = read_all(fd, cur)))
		goto out;
	for (size_t i = 0; i < n_want; i++) {
		pos = probe(cur, want[i].svc_id, want[i].backend_id, &free_pos);
		if (pos >= 0)
			keep[pos] = true;
	}
	/* Free first, so that the pairs placed below can take what the gone ones left. */
	for (pos = 0; pos < XM_XDP_TCP_SLOTS; pos++) {
		if (!cur[pos].svc_id || keep[pos])
			continue;
		if ((err = write_owner(fd, (__u32)pos, 0, 0)))
			goto out;
		memset(&cur[pos], 0, sizeof(cur[pos]));
	}
	for (size_t i = 0; i < n_want; i++) {
		if (probe(cur, want[i].svc_id, want[i].backend_id, &free_pos) >= 0)
			continue; /* kept, or placed for a duplicate above */
		if (free_pos < 0) {
			unplaced++;
			continue;
		}
		if ((err = write_owner(fd, (__u32)free_pos, want[i].svc_id, want[i].backend_id)))
			goto out;
		cur[free_pos].svc_id = want[i].svc_id;
		cur[free_pos].backend_id = want[i].backend_id;
	}
	for (pos = 0; pos < XM_XDP_TCP_SLOTS; pos++)
		placed += cur[pos].svc_id != 0;
	if (fill) {
		fill->placed = placed;
		fill->unplaced = unplaced;
	}
	if (unplaced) {
		log_warn("xdp: %zu (service port, local backend) pairs found no free position in xm_xdp_tcp_counters "
			 "(%d positions, %d probes each): their istio_tcp_* metrics are not counted",
			 unplaced, XM_XDP_TCP_SLOTS, XM_XDP_TCP_PROBES);
		err = -ENOSPC;
	}
out:
	if (err && err != -ENOSPC)
		log_error("xdp: xm_xdp_tcp_counters: %s", strerror(-err));
	free(want);
	free(keep);
	free(cur);
	return err;
}

int tcp_counters_read(int fd, struct xm_xdp_tcp_metrics **out)
{
	struct xm_xdp_tcp_metrics *all = calloc(XM_XDP_TCP_SLOTS, sizeof(*all));
	int err, n = 0;

	*out = NULL;
	if (!all)
		return -ENOMEM;
	err = read_all(fd, all);
	if (err) {
		free(all);
		return err;
	}
	for (int pos = 0; pos < XM_XDP_TCP_SLOTS; pos++)
		if (all[pos].svc_id)
			all[n++] = all[pos];
	*out = all;
	return n;
}
