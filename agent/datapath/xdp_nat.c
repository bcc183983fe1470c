// SPDX-License-Identifier: Apache-2.0
#include "datapath/xdp_nat.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/log.h"

struct pairs {
	struct xm_nat_pair *p;
	size_t n, cap;
};

static int pairs_add(struct pairs *a, const struct xm_nat_backend_key *k, const struct xm_nat_vip *v)
{
	if (XM_GROW(a->p, a->cap, a->n + 1))
		return -ENOMEM;
	memset(&a->p[a->n], 0, sizeof(a->p[a->n]));
	a->p[a->n].key = *k;
	a->p[a->n].vip = *v;
	a->n++;
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_nat_pair));
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_nat_backend_key));
}

static bool pairs_has(const struct pairs *a, const struct xm_nat_pair *p)
{
	return a->n && bsearch(p, a->p, a->n, sizeof(*a->p), pair_cmp);
}

static void pairs_sort(struct pairs *a)
{
	size_t i, j;

	if (a->n > 1)
		qsort(a->p, a->n, sizeof(*a->p), pair_cmp);
	for (i = j = 0; i < a->n; i++) /* a backend serving one VIP:port through two service entries */
		if (!j || pair_cmp(&a->p[j - 1], &a->p[i]))
			a->p[j++] = a->p[i];
	a->n = j;
}

/* What st selects: each local ready backend of an external VIP, with that VIP:port. */
static int selected_pairs(const struct xm_lb_state *st, struct pairs *out)
{
	size_t i, j;

	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];

		if (!(s->flags & XM_SVC_F_EXTERNAL))
			continue;
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			struct xm_nat_backend_key k;
			struct xm_nat_vip v;

			if (!b->ready || !b->local)
				continue;
			memset(&k, 0, sizeof(k));
			memset(&v, 0, sizeof(v));
			k.addr = b->addr;
			k.port = htons(b->port);
			k.proto = s->key.proto;
			k.family = b->family;
			v.vip = s->key.vip;
			v.vport = s->key.port;
			if (pairs_add(out, &k, &v))
				return -ENOMEM;
		}
	}
	pairs_sort(out);
	return 0;
}

/* What the table holds now (also what an earlier agent wrote: its pairs drain like ours). */
static int table_pairs(int fd, struct pairs *out)
{
	struct xm_nat_backend_key k, next, *prev = NULL;
	struct xm_nat_backend_value v;
	__u32 i;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v) < 0)
			continue;
		for (i = 0; i < v.count && i < XM_NAT_MAX_VIPS; i++)
			if (pairs_add(out, &k, &v.vips[i]))
				return -ENOMEM;
	}
	pairs_sort(out);
	return 0;
}

static int drain_cmp(const void *a, const void *b)
{
	return pair_cmp(&((const struct xm_nat_draining *)a)->pair, &((const struct xm_nat_draining *)b)->pair);
}

/* d = the table's pairs that st does not select: those already draining keep their start. */
static int drain_update(struct xm_nat_drain *d, const struct pairs *have, const struct pairs *want, uint64_t now_ms)
{
	struct xm_nat_draining *next = NULL;
	size_t i, n = 0;

	if (have->n && !(next = calloc(have->n, sizeof(*next))))
		return -ENOMEM;
	for (i = 0; i < have->n; i++) {
		const struct xm_nat_draining *old;
		struct xm_nat_draining probe = { .pair = have->p[i] };

		if (pairs_has(want, &have->p[i]))
			continue;
		old = d->n ? bsearch(&probe, d->items, d->n, sizeof(*d->items), drain_cmp) : NULL;
		next[n].pair = have->p[i];
		next[n].since_ms = old ? old->since_ms : now_ms;
		n++;
	}
	free(d->items);
	d->items = next;
	d->n = d->cap = n;
	return 0;
}

/* Marks in held[] the draining pairs that a flow of the connection table pins (a local flow, same VIP:port). */
static void drain_referenced(const struct xm_nat_drain *d, int ct_fd, bool *held)
{
	static struct xm_ct_key keys[4096];
	static struct xm_ct_value vals[4096];
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	__u64 in = 0, out = 0;
	void *inp = NULL;

	for (;;) {
		__u32 count = 4096, i;
		int err = bpf_map_lookup_batch(ct_fd, inp, &out, keys, vals, &count, &o);

		for (i = 0; i < count; i++) {
			struct xm_nat_draining probe;
			const struct xm_nat_draining *hit;

			if (!(vals[i].flags & XM_BACKEND_F_LOCAL))
				continue;
			memset(&probe, 0, sizeof(probe));
			probe.pair.key.addr = vals[i].addr;
			probe.pair.key.port = vals[i].port;
			probe.pair.key.proto = keys[i].proto;
			probe.pair.key.family = vals[i].family;
			probe.pair.vip.vip = keys[i].daddr;
			probe.pair.vip.vport = keys[i].dport;
			hit = bsearch(&probe, d->items, d->n, sizeof(*d->items), drain_cmp);
			if (hit)
				held[hit - d->items] = true;
		}
		if (err)
			break; /* ENOENT: the end */
		in = out;
		inp = &in;
	}
}

static void describe(const struct xm_nat_pair *p, char *buf, size_t len)
{
	char be[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];
	int af = p->key.family == XM_FAMILY_V4 ? AF_INET : AF_INET6;

	inet_ntop(af, &p->key.addr, be, sizeof(be));
	inet_ntop(af, &p->vip.vip, vip, sizeof(vip));
	snprintf(buf, len, "backend %s:%u of %s:%u/%s", be, ntohs(p->key.port), vip, ntohs(p->vip.vport),
		 p->key.proto == IPPROTO_UDP ? "UDP" : "TCP");
}

/* Keeps the draining pairs that a flow still holds and that have not drained for too long. */
static int drain_filter(struct xm_nat_drain *d, int ct_fd, uint64_t now_ms)
{
	bool *held;
	size_t i, j;
	char what[160];

	if (!d->n)
		return 0;
	held = calloc(d->n, sizeof(*held));
	if (!held)
		return -ENOMEM;
	drain_referenced(d, ct_fd, held);
	for (i = j = 0; i < d->n; i++) {
		bool expired = now_ms - d->items[i].since_ms >= XM_NAT_DRAIN_MAX_MS;

		if (held[i] && expired) {
			describe(&d->items[i].pair, what, sizeof(what));
			log_warn("xdp: reverse NAT of %s drained for %d s and is removed: replies of its remaining "
				 "flows leave with the pod's address",
				 what, XM_NAT_DRAIN_MAX_MS / 1000);
		}
		if (held[i] && !expired)
			d->items[j++] = d->items[i];
	}
	d->n = j;
	free(held);
	return 0;
}

/* Writes one backend's VIP:ports (selected ones first, then draining ones) if the table differs. */
static int write_key(int fd, const struct xm_nat_backend_key *k, const struct pairs *want, size_t w,
		     const struct xm_nat_drain *d, size_t r)
{
	struct xm_nat_backend_value v, cur;
	bool full = false;

	memset(&v, 0, sizeof(v));
	for (; w < want->n && !key_cmp(&want->p[w].key, k); w++) {
		if (v.count < XM_NAT_MAX_VIPS)
			v.vips[v.count++] = want->p[w].vip;
		else
			full = true;
	}
	for (; d && r < d->n && !key_cmp(&d->items[r].pair.key, k); r++)
		if (v.count < XM_NAT_MAX_VIPS)
			v.vips[v.count++] = d->items[r].pair.vip;
	if (full)
		log_warn("xdp: a local backend serves more than %d external VIP ports: replies of the others keep "
			 "the pod's address",
			 XM_NAT_MAX_VIPS);
	if (bpf_map_lookup_elem(fd, k, &cur) == 0 && !memcmp(&cur, &v, sizeof(v)))
		return 0;
	if (bpf_map_update_elem(fd, k, &v, BPF_ANY) < 0) {
		int err = -errno;

		log_error("xm_nat_backends: update: %s", strerror(errno));
		return err;
	}
	return 0;
}

int xdp_nat_backends_sync(struct xm_nat_drain *d, int nat_fd, int ct_fd, const struct xm_lb_state *st, uint64_t now_ms)
{
	struct pairs want = { 0 }, have = { 0 };
	struct xm_nat_backend_key k, next, *prev = NULL;
	size_t w = 0, r = 0;
	int err;

	err = selected_pairs(st, &want);
	if (!err && d)
		err = table_pairs(nat_fd, &have);
	if (!err && d)
		err = drain_update(d, &have, &want, now_ms);
	if (!err && d)
		err = drain_filter(d, ct_fd, now_ms);
	if (err) {
		log_error("xm_nat_backends: %s", strerror(-err));
		goto out;
	}
	/* Both lists are sorted by backend first: walk them as one. */
	while (w < want.n || (d && r < d->n)) {
		const struct xm_nat_backend_key *kw = w < want.n ? &want.p[w].key : NULL;
		const struct xm_nat_backend_key *kr = d && r < d->n ? &d->items[r].pair.key : NULL;
		const struct xm_nat_backend_key *key = !kr || (kw && key_cmp(kw, kr) <= 0) ? kw : kr;
		int e = write_key(nat_fd, key, &want, w, d, r);

		err = err ? err : e;
		k = *key;
		while (w < want.n && !key_cmp(&want.p[w].key, &k))
			w++;
		while (d && r < d->n && !key_cmp(&d->items[r].pair.key, &k))
			r++;
	}
	/* Backends with nothing selected nor draining. */
	while (bpf_map_get_next_key(nat_fd, prev, &next) == 0) {
		bool keep;

		k = next;
		/* Both lists are sorted by backend first, so a search by backend alone finds it. */
		keep = (want.n && bsearch(&k, want.p, want.n, sizeof(*want.p), key_cmp)) ||
		       (d && d->n && bsearch(&k, d->items, d->n, sizeof(*d->items), key_cmp));
		if (!keep && bpf_map_delete_elem(nat_fd, &k) == 0) {
			prev = NULL;
			continue;
		}
		prev = &k;
	}
out:
	free(want.p);
	free(have.p);
	return err;
}

void xdp_nat_drain_free(struct xm_nat_drain *d)
{
	free(d->items);
	memset(d, 0, sizeof(*d));
}
