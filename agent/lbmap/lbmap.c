// SPDX-License-Identifier: Apache-2.0
#include "lbmap/lbmap.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/log.h"
#include "lb/maglev.h"
#include "outlier/outlier.h"

#define BACKEND_BUCKETS (1u << 17)

struct backend_entry {
	struct xm_backend value; /* as in xm_backends */
	uint32_t refs;		 /* service ports listing it in the last apply */
	int32_t next;		 /* hash chain, -1 ends */
	bool used;
	bool in_gc;
};

/* A service port as it is in the maps now. */
struct applied_svc {
	struct xm_svc_key key;
	struct xm_svc_value value;
	uint32_t *ids; /* ready backend ids in list order; NULL when adopted (unknown) */
	uint32_t n_ids;
	uint32_t maglev_size;
	struct xm_outlier_cfg outlier; /* as published; all zero when off */
	uint32_t outlier_id;	       /* as in xm_outlier_ids: the svc_id of one VIP of the same Service port */
};

struct garbage {
	uint64_t deadline_ms;
	uint32_t table_id;
	uint32_t count;
	bool maglev;
	uint32_t backend_id; /* non-zero: a backend to delete instead of a table */
};

/* An id whose VIP failed to publish while its Service port's other VIPs use it as their outlier id. */
#define SVC_ID_OUTLIER_ONLY 2

struct xm_lbmap {
	struct xm_map_fds fds;
	struct backend_entry *backends; /* indexed by id */
	int32_t buckets[BACKEND_BUCKETS];
	uint32_t next_backend_id;
	uint32_t n_backends;
	struct applied_svc *svcs; /* sorted by key */
	size_t n_svcs;
	uint8_t *svc_id_used;	  /* 1: a VIP's; SVC_ID_OUTLIER_ONLY: only the outlier id of published VIPs */
	uint32_t next_svc_id;	  /* next id to try for a service port in [XM_MAX_EXT_SVC_IDS, XM_MAX_SVC_IDS) */
	uint32_t next_ext_svc_id; /* and for an external VIP port, in [1, XM_MAX_EXT_SVC_IDS) */
	uint32_t next_table_id;
	struct garbage *gc;
	size_t n_gc, cap_gc;
	/* BTF for Maglev tables: kernels before 6.2 refuse an inner map whose BTF-ness differs from the
	 * template's, and the template has the object's BTF. -1 when unavailable. */
	int maglev_btf_fd;
	__u32 maglev_btf_key, maglev_btf_value;
};

static uint32_t backend_hash(const struct xm_backend *b)
{
	uint64_t h = maglev_key_of(b, offsetof(struct xm_backend, flags));

	return (uint32_t)(h & (BACKEND_BUCKETS - 1));
}

static bool backend_same(const struct xm_backend *a, const struct xm_backend *b)
{
	return !memcmp(a, b, offsetof(struct xm_backend, flags));
}

static void backend_link(struct xm_lbmap *m, uint32_t id)
{
	uint32_t h = backend_hash(&m->backends[id].value);

	m->backends[id].next = m->buckets[h];
	m->buckets[h] = (int32_t)id;
	m->backends[id].used = true;
	m->n_backends++;
}

static void backend_unlink(struct xm_lbmap *m, uint32_t id)
{
	int32_t *pp = &m->buckets[backend_hash(&m->backends[id].value)];

	while (*pp >= 0 && (uint32_t)*pp != id)
		pp = &m->backends[*pp].next;
	if (*pp >= 0)
		*pp = m->backends[id].next;
	memset(&m->backends[id], 0, sizeof(m->backends[id]));
	m->backends[id].next = -1;
	m->n_backends--;
}

static uint32_t backend_find(const struct xm_lbmap *m, const struct xm_backend *b)
{
	int32_t i;

	for (i = m->buckets[backend_hash(b)]; i >= 0; i = m->backends[i].next)
		if (backend_same(&m->backends[i].value, b))
			return (uint32_t)i;
	return 0;
}

int64_t lbmap_backend_active(const struct xm_lbmap *m, uint32_t backend_id)
{
	struct xm_backend_conns c = { 0 };

	if (bpf_map_lookup_elem(m->fds.backend_conns, &backend_id, &c) < 0)
		return 0;
	return c.active;
}

uint32_t lbmap_backend_id(const struct xm_lbmap *m, const union xm_addr *addr, uint16_t port_be, uint8_t family)
{
	struct xm_backend b;

	memset(&b, 0, sizeof(b));
	b.addr = *addr;
	b.port = port_be;
	b.family = family;
	return backend_find(m, &b);
}

/* Finds or creates the id of a backend and makes the map hold its current flags. 0 on failure. */
static uint32_t backend_get(struct xm_lbmap *m, const struct xm_lb_backend *lb)
{
	struct xm_backend b;
	uint32_t id, tries;

	memset(&b, 0, sizeof(b));
	b.addr = lb->addr;
	b.port = htons(lb->port);
	b.family = lb->family;
	b.flags = lb->local ? XM_BACKEND_F_LOCAL : 0;
	b.node_addr = lb->node_addr;
	id = backend_find(m, &b);
	if (id) {
		struct xm_backend *cur = &m->backends[id].value;

		/* Same identity, new placement facts: one update replaces the value whole. */
		if (cur->flags != b.flags || memcmp(&cur->node_addr, &b.node_addr, sizeof(b.node_addr))) {
			if (bpf_map_update_elem(m->fds.backends, &id, &b, BPF_ANY) < 0)
				return 0;
			*cur = b;
		}
		return id;
	}
	/* Ids rotate rather than being reused at once, and never while connections still count on one. */
	for (tries = 0; tries < XM_MAX_BACKENDS; tries++) {
		id = m->next_backend_id++;
		if (m->next_backend_id >= XM_MAX_BACKENDS)
			m->next_backend_id = 1;
		if (id && !m->backends[id].used && lbmap_backend_active(m, id) == 0)
			break;
		id = 0;
	}
	if (!id) {
		log_error("backend table full (%u)", XM_MAX_BACKENDS - 1);
		return 0;
	}
	if (bpf_map_update_elem(m->fds.backends, &id, &b, BPF_NOEXIST) < 0) {
		log_error("xm_backends: add backend %u: %s", id, strerror(errno));
		return 0;
	}
	m->backends[id].value = b;
	backend_link(m, id);
	return id;
}

static int key_cmp(const struct xm_svc_key *a, const struct xm_svc_key *b)
{
	return memcmp(a, b, sizeof(*a));
}

static struct applied_svc *svc_find(struct xm_lbmap *m, const struct xm_svc_key *key)
{
	size_t lo = 0, hi = m->n_svcs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = key_cmp(&m->svcs[mid].key, key);

		if (!c)
			return &m->svcs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint32_t lbmap_svc_id(const struct xm_lbmap *m, const struct xm_svc_key *key)
{
	const struct applied_svc *a = svc_find((struct xm_lbmap *)m, key);

	return a ? a->value.svc_id : 0;
}

uint32_t lbmap_outlier_id(const struct xm_lbmap *m, const struct xm_svc_key *key)
{
	const struct applied_svc *a = svc_find((struct xm_lbmap *)m, key);

	return a ? a->outlier_id : 0;
}

bool lbmap_svc_key(const struct xm_lbmap *m, uint32_t svc_id, struct xm_svc_key *key)
{
	size_t i;

	for (i = 0; i < m->n_svcs; i++) {
		if (m->svcs[i].value.svc_id == svc_id) {
			*key = m->svcs[i].key;
			return true;
		}
	}
	return false;
}

bool lbmap_backend(const struct xm_lbmap *m, uint32_t backend_id, struct xm_backend *out)
{
	if (!backend_id || backend_id >= XM_MAX_BACKENDS || !m->backends[backend_id].used)
		return false;
	*out = m->backends[backend_id].value;
	return true;
}

static int gc_push(struct xm_lbmap *m, const struct garbage *g)
{
	if (XM_GROW(m->gc, m->cap_gc, m->n_gc + 1))
		return -ENOMEM;
	m->gc[m->n_gc++] = *g;
	return 0;
}

static void gc_table(struct xm_lbmap *m, const struct xm_svc_value *v, uint64_t deadline)
{
	struct garbage g = { .deadline_ms = deadline, .table_id = v->table_id, .count = v->count };

	if (!v->table_id || !v->count)
		return;
	g.maglev = v->algo == XM_LB_MAGLEV;
	if (gc_push(m, &g))
		log_warn("out of memory: table %u leaks in the maps until restart", v->table_id);
}

static void delete_table(struct xm_lbmap *m, const struct garbage *g)
{
	uint32_t i;

	if (g->maglev) {
		bpf_map_delete_elem(m->fds.maglev, &g->table_id);
		return;
	}
	for (i = 0; i < g->count; i++) {
		struct xm_slot_key k = { .table_id = g->table_id, .slot = i };

		bpf_map_delete_elem(m->fds.slots, &k);
	}
}

bool lbmap_gc(struct xm_lbmap *m, uint64_t now_ms)
{
	size_t i, kept = 0;

	for (i = 0; i < m->n_gc; i++) {
		struct garbage *g = &m->gc[i];

		if (g->deadline_ms > now_ms) {
			m->gc[kept++] = *g;
			continue;
		}
		if (!g->backend_id) {
			delete_table(m, g);
			continue;
		}
		m->backends[g->backend_id].in_gc = false;
		/* Listed again since it was queued: it stays. */
		if (m->backends[g->backend_id].refs || !m->backends[g->backend_id].used)
			continue;
		bpf_map_delete_elem(m->fds.backends, &g->backend_id);
		backend_unlink(m, g->backend_id);
	}
	m->n_gc = kept;
	return kept > 0;
}

/* The object's BTF, found through a map of the same object (the outer map of maps has none). */
static void maglev_btf_init(struct xm_lbmap *m)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct btf *btf;
	int key, val;

	m->maglev_btf_fd = -1;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(m->fds.services, &info, &len) || !info.btf_id)
		return;
	btf = btf__load_from_kernel_by_id(info.btf_id);
	if (!btf)
		return;
	key = btf__find_by_name_kind(btf, "__u32", BTF_KIND_TYPEDEF);
	val = btf__find_by_name_kind(btf, "xm_slot_value", BTF_KIND_STRUCT);
	btf__free(btf);
	if (key <= 0 || val <= 0)
		return;
	m->maglev_btf_fd = bpf_btf_get_fd_by_id(info.btf_id);
	m->maglev_btf_key = (__u32)key;
	m->maglev_btf_value = (__u32)val;
}

static int publish_maglev(struct xm_lbmap *m, const struct xm_lb_service *s, const uint32_t *ids, uint32_t n,
			  uint32_t table_id)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
	uint32_t size = s->maglev_size, i, *table = NULL, *keys = NULL;
	struct xm_slot_value *vals = NULL;
	uint64_t *hkeys = NULL;
	int fd = -1, err = -ENOMEM;

	if (!maglev_is_prime(size) || size <= n || size > XM_MAGLEV_MAX_SIZE) {
		log_error("service %s/%s: Maglev table size %u must be a prime above %u and at most %u", s->ns, s->name,
			  size, n, XM_MAGLEV_MAX_SIZE);
		return -EINVAL;
	}
	table = calloc(size, sizeof(*table));
	keys = calloc(size, sizeof(*keys));
	vals = calloc(size, sizeof(*vals));
	hkeys = calloc(n, sizeof(*hkeys));
	if (!table || !keys || !vals || !hkeys)
		goto out;
	for (i = 0; i < n; i++) {
		const struct xm_backend *b = &m->backends[ids[i]].value;

		/* Canonical identity: family, address, port — the same on every node. */
		hkeys[i] = maglev_key_of(b, offsetof(struct xm_backend, flags));
	}
	err = maglev_build_table(hkeys, n, table, size);
	if (err)
		goto out;
	for (i = 0; i < size; i++) {
		keys[i] = i;
		vals[i].backend_id = ids[table[i]];
	}
	if (m->maglev_btf_fd >= 0) {
		opts.btf_fd = m->maglev_btf_fd;
		opts.btf_key_type_id = m->maglev_btf_key;
		opts.btf_value_type_id = m->maglev_btf_value;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "xm_maglev_tbl", sizeof(uint32_t), sizeof(struct xm_slot_value), size,
			    &opts);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	{
		__u32 count = size;

		if (bpf_map_update_batch(fd, keys, vals, &count, NULL) < 0) {
			err = -errno;
			goto out;
		}
	}
	if (bpf_map_update_elem(m->fds.maglev, &table_id, &fd, BPF_ANY) < 0) {
		err = -errno;
		goto out;
	}
	err = 0;
out:
	if (err)
		log_error("service %s/%s: publish Maglev table: %s", s->ns, s->name, strerror(-err));
	if (fd >= 0)
		close(fd);
	free(table);
	free(keys);
	free(vals);
	free(hkeys);
	return err;
}

static int publish_list(struct xm_lbmap *m, const uint32_t *ids, uint32_t n, uint32_t table_id)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct xm_slot_key k = { .table_id = table_id, .slot = i };
		struct xm_slot_value v = { .backend_id = ids[i] };

		if (bpf_map_update_elem(m->fds.slots, &k, &v, BPF_ANY) < 0) {
			int err = -errno;
			struct garbage g = { .table_id = table_id, .count = i };

			delete_table(m, &g);
			return err;
		}
	}
	return 0;
}

/* Outlier detection turned off for a service port, or the port is gone: drop its policy and state. */
static void outlier_forget(struct xm_lbmap *m, uint32_t svc_id)
{
	struct xm_outlier_key k, next, *prev = NULL;
	struct xm_outlier_svc zero = { 0 };

	bpf_map_delete_elem(m->fds.outlier_cfg, &svc_id);
	while (bpf_map_get_next_key(m->fds.outlier, prev, &next) == 0) {
		k = next;
		if (k.svc_id == svc_id && bpf_map_delete_elem(m->fds.outlier, &k) == 0) {
			prev = NULL; /* restart the walk after deleting the current key */
			continue;
		}
		prev = &k;
	}
	bpf_map_update_elem(m->fds.outlier_svc, &svc_id, &zero, BPF_ANY);
}

static bool svc_id_in_range(uint32_t id, bool external)
{
	return external ? id && id < XM_MAX_EXT_SVC_IDS : id >= XM_MAX_EXT_SVC_IDS && id < XM_MAX_SVC_IDS;
}

/*
 * A free id in the service port's range (external VIP ports low, the rest high); 0 when the range is full.
 * Ids rotate through the range rather than being reused at once: flows and sockets may still carry one.
 */
static uint32_t svc_id_alloc(struct xm_lbmap *m, bool external)
{
	uint32_t lo = external ? 1 : XM_MAX_EXT_SVC_IDS, span = (external ? XM_MAX_EXT_SVC_IDS : XM_MAX_SVC_IDS) - lo;
	uint32_t *next = external ? &m->next_ext_svc_id : &m->next_svc_id;

	for (uint32_t tries = 0; tries < span; tries++) {
		uint32_t id = lo + (*next - lo) % span;

		*next = id + 1;
		if (!m->svc_id_used[id]) {
			m->svc_id_used[id] = 1;
			return id;
		}
	}
	return 0;
}

static void outlier_cfg_of(const struct xm_lb_service *s, uint32_t n, struct xm_outlier_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (s->outlier_on)
		outlier_cfg_from_policy(&s->outlier, n, cfg);
}

static uint8_t svc_flags(const struct xm_lb_service *s)
{
	return s->flags | (s->outlier_on ? XM_SVC_F_OUTLIER : 0);
}

static bool svc_unchanged(const struct applied_svc *old, const struct xm_lb_service *s, const uint32_t *ids, uint32_t n,
			  uint32_t oid)
{
	struct xm_outlier_cfg cfg;

	if (!old || !old->ids || old->value.algo != s->algo || old->value.flags != svc_flags(s) || old->n_ids != n ||
	    old->outlier_id != oid)
		return false;
	outlier_cfg_of(s, n, &cfg);
	if (memcmp(&cfg, &old->outlier, sizeof(cfg)))
		return false;
	if (s->algo == XM_LB_MAGLEV && n && old->maglev_size != s->maglev_size)
		return false;
	return !memcmp(old->ids, ids, n * sizeof(*ids));
}

static bool id_listed(const uint32_t *ids, uint32_t n, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/*
 * After a service port's endpoint set changed: forget the state of endpoints it no longer lists, and
 * recount its ejected endpoints. The kernel changes the count only at transitions it makes itself, so
 * this is the one place userspace writes it; a transition racing with it is corrected by the next apply.
 */
static int outlier_reconcile(struct xm_lbmap *m, uint32_t svc_id, const struct applied_svc *old, const uint32_t *ids,
			     uint32_t n)
{
	struct xm_outlier_svc count = { 0 };
	uint64_t now = outlier_now_ns();
	uint32_t i;

	if (old && old->ids) {
		for (i = 0; i < old->n_ids; i++) {
			struct xm_outlier_key k = { .svc_id = svc_id, .backend_id = old->ids[i] };

			if (!id_listed(ids, n, old->ids[i]))
				bpf_map_delete_elem(m->fds.outlier, &k);
		}
	}
	for (i = 0; i < n; i++) {
		struct xm_outlier_key k = { .svc_id = svc_id, .backend_id = ids[i] };
		struct xm_outlier_state st;

		if (!bpf_map_lookup_elem_flags(m->fds.outlier, &k, &st, BPF_F_LOCK) && st.ejected_until_ns > now)
			count.ejected++;
	}
	/* A stale count would let the kernel eject past maxEjectionPercent (or hold back): not applied. */
	if (bpf_map_update_elem(m->fds.outlier_svc, &svc_id, &count, BPF_ANY) < 0)
		return -errno;
	return 0;
}

/*
 * Switches one service port (one VIP) to svc_id (its old id, or one allocated for it: 0 when none was free)
 * and the outlier id oid. On failure *out keeps the old state, if there was one.
 */
static int apply_one(struct xm_lbmap *m, const struct xm_lb_service *s, struct applied_svc *old,
		     struct applied_svc *out, uint64_t deadline, bool *changed, uint32_t svc_id, uint32_t oid)
{
	struct xm_outlier_cfg ocfg;
	struct xm_svc_value v;
	uint32_t *ids, n = 0, i;
	/* An id outside the port's range (pinned by a version before the ranges): this apply moves it. */
	bool reid = old && !svc_id_in_range(old->value.svc_id, s->flags & XM_SVC_F_EXTERNAL);
	int err = 0;

	*changed = false;
	ids = calloc(s->n_ready ? s->n_ready : 1, sizeof(*ids));
	if (!ids) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < s->n_backends; i++) {
		if (!s->backends[i].ready)
			continue;
		ids[n] = backend_get(m, &s->backends[i]);
		if (!ids[n]) {
			err = -ENOSPC;
			goto fail;
		}
		n++;
	}
	if (n > XM_MAX_SLOTS_PER_SVC) {
		log_error("service %s/%s: %u ready backends, at most %u per port", s->ns, s->name, n,
			  XM_MAX_SLOTS_PER_SVC);
		err = -E2BIG;
		goto fail;
	}
	if (!reid && svc_unchanged(old, s, ids, n, oid)) {
		*out = *old;
		old->ids = NULL;
		free(ids);
		return 0;
	}

	memset(&v, 0, sizeof(v));
	v.algo = s->algo;
	v.flags = svc_flags(s);
	v.svc_id = svc_id;
	if (!v.svc_id) {
		if (s->flags & XM_SVC_F_EXTERNAL)
			log_error("at most %d external VIP ports", XM_MAX_EXT_SVC_IDS - 1);
		err = -ENOSPC;
		goto fail;
	}
	outlier_cfg_of(s, n, &ocfg);
	/* The policy, and the VIP's way to it, are in place before the service points selection at them. */
	if (bpf_map_update_elem(m->fds.outlier_ids, &v.svc_id, &oid, BPF_ANY) < 0) {
		err = -errno;
		goto fail;
	}
	if (s->outlier_on) {
		err = outlier_reconcile(m, oid, reid || !old || old->outlier_id != oid ? NULL : old, ids, n);
		if (!err && bpf_map_update_elem(m->fds.outlier_cfg, &oid, &ocfg, BPF_ANY) < 0)
			err = -errno;
		if (err)
			goto fail;
	}
	if (n) {
		v.table_id = m->next_table_id++;
		if (!m->next_table_id)
			m->next_table_id = 1;
		v.count = s->algo == XM_LB_MAGLEV ? s->maglev_size : n;
		err = s->algo == XM_LB_MAGLEV ? publish_maglev(m, s, ids, n, v.table_id)
					      : publish_list(m, ids, n, v.table_id);
		if (err)
			goto fail;
	}
	/* The switch: one update replaces (table_id, count, algo) together. */
	if (bpf_map_update_elem(m->fds.services, &s->key, &v, BPF_ANY) < 0) {
		struct garbage g = { .table_id = v.table_id, .count = v.count, .maglev = v.algo == XM_LB_MAGLEV };

		err = -errno;
		if (n)
			delete_table(m, &g);
		goto fail;
	}
	if (old)
		gc_table(m, &old->value, deadline);
	/* Outlier state nobody uses any more is forgotten once the whole apply is done (outlier_forget_unused). */
	if (reid) {
		m->svc_id_used[old->value.svc_id] = 0;
		log_info("service %s/%s: id %u -> %u (external VIP ports take ids below %d)", s->ns, s->name,
			 old->value.svc_id, v.svc_id, XM_MAX_EXT_SVC_IDS);
	}
	out->key = s->key;
	out->value = v;
	out->ids = ids;
	out->n_ids = n;
	out->maglev_size = s->maglev_size;
	out->outlier = ocfg;
	out->outlier_id = oid;
	*changed = true;
	return 0;

fail : {
	char k[80];

	lb_format_key(&s->key, k, sizeof(k));
	log_error("service %s/%s %s: not applied, previous state kept: %s", s->ns, s->name, k, strerror(-err));
}
	/* A new id goes back, unless the port's other VIPs take it as their outlier id: then it is kept for that. */
	if ((!old || reid) && svc_id)
		m->svc_id_used[svc_id] = svc_id == oid ? SVC_ID_OUTLIER_ONLY : 0;
	free(ids);
	if (old) {
		*out = *old;
		old->ids = NULL;
		return err;
	}
	memset(out, 0, sizeof(*out));
	return err;
}

/* Orders VIPs by Service port (namespace, name, port, protocol, family), its ClusterIPs first, then by key. */
static int group_cmp(const void *pa, const void *pb, void *arg)
{
	const struct xm_lb_service *base = arg, *a = &base[*(const uint32_t *)pa], *b = &base[*(const uint32_t *)pb];
	int c = strcmp(a->ns, b->ns);

	if (!c)
		c = strcmp(a->name, b->name);
	if (!c)
		c = (int)a->key.port - (int)b->key.port;
	if (!c)
		c = (int)a->key.proto - (int)b->key.proto;
	if (!c)
		c = (int)a->key.family - (int)b->key.family;
	if (!c)
		c = (int)(a->flags & XM_SVC_F_EXTERNAL) - (int)(b->flags & XM_SVC_F_EXTERNAL);
	return c ? c : key_cmp(&a->key, &b->key);
}

static bool same_port(const struct xm_lb_service *a, const struct xm_lb_service *b)
{
	return !strcmp(a->ns, b->ns) && !strcmp(a->name, b->name) && a->key.port == b->key.port &&
	       a->key.proto == b->key.proto && a->key.family == b->key.family;
}

/*
 * The ids of this apply: each VIP's svc_id (its old one, or a new one; 0 for a duplicate key or when none is
 * free) and its Service port's outlier id, the same for all its VIPs. The outlier id stays what it was while
 * the VIP it came from remains (its state lives on); otherwise it is the first VIP's id, a ClusterIP's when
 * the port has one. Returns -ENOMEM.
 */
static int plan_ids(struct xm_lbmap *m, const struct xm_lb_state *st, uint32_t *sid, uint32_t *oid)
{
	uint32_t *order = calloc(st->n_services + 1, sizeof(*order)), n = 0, i, j, k;

	if (!order)
		return -ENOMEM;
	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];
		const struct applied_svc *old = svc_find(m, &s->key);
		bool ext = s->flags & XM_SVC_F_EXTERNAL;

		if (i && !key_cmp(&st->services[i - 1].key, &s->key))
			continue; /* two Services claim one VIP:port; validation reports it */
		sid[i] = old && svc_id_in_range(old->value.svc_id, ext) ? old->value.svc_id : svc_id_alloc(m, ext);
		order[n++] = i;
	}
	qsort_r(order, n, sizeof(*order), group_cmp, (void *)st->services);
	for (i = 0; i < n; i = j) {
		uint32_t anchor = 0;

		for (j = i + 1; j < n && same_port(&st->services[order[i]], &st->services[order[j]]); j++)
			;
		for (k = i; k < j && !anchor; k++) {
			const struct applied_svc *old = svc_find(m, &st->services[order[k]].key);
			uint32_t l;

			for (l = i; old && old->outlier_id && l < j && !anchor; l++)
				if (sid[order[l]] == old->outlier_id)
					anchor = old->outlier_id;
		}
		for (k = i; k < j && !anchor; k++)
			anchor = sid[order[k]];
		for (k = i; k < j; k++)
			oid[order[k]] = anchor;
	}
	free(order);
	return 0;
}

/*
 * After an apply: the outlier state of Service ports none of whose VIPs has outlier detection any more is
 * dropped, and ids kept only as an outlier id nobody uses now go back.
 */
static void outlier_forget_unused(struct xm_lbmap *m, const struct applied_svc *prev, size_t n_prev)
{
	uint8_t *live = calloc(XM_MAX_SVC_IDS, 1);
	size_t i;

	if (!live)
		return; /* kept until a later apply: harmless */
	for (i = 0; i < m->n_svcs; i++) {
		if (m->svcs[i].outlier_id < XM_MAX_SVC_IDS)
			live[m->svcs[i].outlier_id] |= 1 | ((m->svcs[i].value.flags & XM_SVC_F_OUTLIER) ? 2 : 0);
	}
	for (i = 0; i < n_prev; i++) {
		uint32_t o = prev[i].outlier_id;

		if ((prev[i].value.flags & XM_SVC_F_OUTLIER) && o && o < XM_MAX_SVC_IDS && !(live[o] & 2)) {
			outlier_forget(m, o);
			live[o] |= 2; /* once */
		}
	}
	for (i = 1; i < XM_MAX_SVC_IDS; i++)
		if (m->svc_id_used[i] == SVC_ID_OUTLIER_ONLY && !(live[i] & 1))
			m->svc_id_used[i] = 0;
	free(live);
}

int lbmap_apply(struct xm_lbmap *m, const struct xm_lb_state *st, uint64_t now_ms, struct xm_lbmap_stats *stats)
{
	uint64_t deadline = now_ms + XM_LBMAP_GRACE_MS;
	struct applied_svc *next, *prev;
	size_t i, n = 0, errors = 0, n_prev;
	uint32_t *sid, *oid;
	uint32_t id;

	memset(stats, 0, sizeof(*stats));
	/* Room for every new service port and every old one whose removal fails: nothing grows below. */
	next = calloc(st->n_services + m->n_svcs + 1, sizeof(*next));
	sid = calloc(st->n_services + 1, sizeof(*sid));
	oid = calloc(st->n_services + 1, sizeof(*oid));
	prev = calloc(m->n_svcs + 1, sizeof(*prev));
	if (!next || !sid || !oid || !prev || plan_ids(m, st, sid, oid)) {
		free(next);
		free(sid);
		free(oid);
		free(prev);
		return -ENOMEM;
	}
	for (i = 0; i < m->n_svcs; i++) {
		prev[i] = m->svcs[i];
		prev[i].ids = NULL;
	}
	n_prev = m->n_svcs;
	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];
		struct applied_svc *old = svc_find(m, &s->key);
		bool changed;

		if (i && !key_cmp(&st->services[i - 1].key, &s->key))
			continue; /* two Services claim one VIP:port; validation reports it */
		if (apply_one(m, s, old, &next[n], deadline, &changed, sid[i], oid[i]))
			errors++;
		if (next[n].value.svc_id)
			n++;
		if (old)
			old->value.svc_id = 0; /* consumed */
		stats->changed += changed;
	}
	/* Service ports that are gone: unpublish, then their lists go after the grace period. */
	for (i = 0; i < m->n_svcs; i++) {
		struct applied_svc *old = &m->svcs[i];

		if (!old->value.svc_id)
			continue;
		if (bpf_map_delete_elem(m->fds.services, &old->key) < 0 && errno != ENOENT) {
			int e = errno;
			char k[80];

			lb_format_key(&old->key, k, sizeof(k));
			log_error("service port %s: not removed, still served: %s", k, strerror(e));
			errors++;
			next[n++] = *old; /* keep it: still published */
			old->ids = NULL;
			continue;
		}
		gc_table(m, &old->value, deadline);
		m->svc_id_used[old->value.svc_id] = 0;
		stats->removed++;
	}
	for (i = 0; i < m->n_svcs; i++)
		free(m->svcs[i].ids);
	free(m->svcs);
	m->svcs = next;
	m->n_svcs = n;
	outlier_forget_unused(m, prev, n_prev);
	free(prev);
	free(sid);
	free(oid);
	if (n > 1) {
		/* Kept entries appended after a failed delete may break the order. */
		for (i = 1; i < n && key_cmp(&next[i - 1].key, &next[i].key) < 0; i++)
			;
		if (i < n)
			qsort(next, n, sizeof(*next), (int (*)(const void *, const void *))key_cmp);
	}

	/* Reference counts, then queue backends nobody lists any more. */
	for (id = 1; id < XM_MAX_BACKENDS; id++)
		m->backends[id].refs = 0;
	for (i = 0; i < n; i++) {
		uint32_t j;

		if (!m->svcs[i].ids) {
			/* Adopted and not re-applied: its list is unknown, keep every backend. */
			for (id = 1; id < XM_MAX_BACKENDS; id++)
				m->backends[id].refs += m->backends[id].used;
			continue;
		}
		for (j = 0; j < m->svcs[i].n_ids; j++)
			m->backends[m->svcs[i].ids[j]].refs++;
	}
	for (id = 1; id < XM_MAX_BACKENDS; id++) {
		struct garbage g = { .deadline_ms = deadline, .backend_id = id };

		if (!m->backends[id].used || m->backends[id].refs || m->backends[id].in_gc)
			continue;
		if (!gc_push(m, &g))
			m->backends[id].in_gc = true;
	}
	stats->services = (uint32_t)n;
	stats->backends = m->n_backends;
	stats->errors = (uint32_t)errors;
	return errors ? -EIO : 0;
}

static int adopt_backends(struct xm_lbmap *m)
{
	uint32_t key, next, *prev = NULL;
	struct xm_backend b;

	while (bpf_map_get_next_key(m->fds.backends, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (key == 0 || key >= XM_MAX_BACKENDS || bpf_map_lookup_elem(m->fds.backends, &key, &b) < 0)
			continue;
		m->backends[key].value = b;
		backend_link(m, key);
		if (key >= m->next_backend_id)
			m->next_backend_id = key + 1 < XM_MAX_BACKENDS ? key + 1 : 1;
	}
	return 0;
}

static int svc_sort_cmp(const void *a, const void *b)
{
	return key_cmp(&((const struct applied_svc *)a)->key, &((const struct applied_svc *)b)->key);
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* ids of the tables the adopted services point at, sorted; NULL when there are none (or out of memory). */
static uint32_t *referenced_tables(const struct xm_lbmap *m)
{
	uint32_t *ids = m->n_svcs ? malloc(m->n_svcs * sizeof(*ids)) : NULL;

	for (size_t i = 0; ids && i < m->n_svcs; i++)
		ids[i] = m->svcs[i].value.table_id;
	if (ids)
		qsort(ids, m->n_svcs, sizeof(*ids), u32_cmp);
	return ids;
}

static bool table_referenced(const struct xm_lbmap *m, const uint32_t *ids, uint32_t table_id)
{
	if (ids)
		return bsearch(&table_id, ids, m->n_svcs, sizeof(*ids), u32_cmp) != NULL;
	for (size_t i = 0; i < m->n_svcs; i++)
		if (m->svcs[i].value.table_id == table_id)
			return true;
	return false;
}

/*
 * Lists and tables that no service points at are unreachable: a crashed apply left them. A sorted id list
 * keeps this O(n log n): at 10,000 service ports the slots map has tens of thousands of keys.
 */
static void drop_orphans(struct xm_lbmap *m)
{
	struct xm_slot_key sk, snext, *sprev = NULL;
	uint32_t tk, tnext, *tprev = NULL;
	uint32_t *ids = referenced_tables(m);

	while (bpf_map_get_next_key(m->fds.slots, sprev, &snext) == 0) {
		sk = snext;
		if (!table_referenced(m, ids, sk.table_id) && bpf_map_delete_elem(m->fds.slots, &sk) == 0) {
			sprev = NULL; /* deleting the current key: restart the walk */
			continue;
		}
		sprev = &sk;
	}
	while (bpf_map_get_next_key(m->fds.maglev, tprev, &tnext) == 0) {
		tk = tnext;
		if (!table_referenced(m, ids, tk) && bpf_map_delete_elem(m->fds.maglev, &tk) == 0) {
			tprev = NULL;
			continue;
		}
		tprev = &tk;
	}
	free(ids);
}

static int adopt_services(struct xm_lbmap *m)
{
	struct xm_svc_key key, next, *prev = NULL;
	struct xm_svc_value v;
	size_t cap = 0;

	while (bpf_map_get_next_key(m->fds.services, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->fds.services, &key, &v) < 0 || !v.svc_id || v.svc_id >= XM_MAX_SVC_IDS)
			continue;
		if (XM_GROW(m->svcs, cap, m->n_svcs + 1))
			return -ENOMEM;
		memset(&m->svcs[m->n_svcs], 0, sizeof(m->svcs[0]));
		m->svcs[m->n_svcs].key = key;
		m->svcs[m->n_svcs].value = v;
		if (bpf_map_lookup_elem(m->fds.outlier_ids, &v.svc_id, &m->svcs[m->n_svcs].outlier_id) < 0 ||
		    !m->svcs[m->n_svcs].outlier_id)
			m->svcs[m->n_svcs].outlier_id = v.svc_id;
		m->n_svcs++;
		m->svc_id_used[v.svc_id] = 1;
		if (v.svc_id < XM_MAX_EXT_SVC_IDS ? v.svc_id >= m->next_ext_svc_id : v.svc_id >= m->next_svc_id)
			*(v.svc_id < XM_MAX_EXT_SVC_IDS ? &m->next_ext_svc_id : &m->next_svc_id) = v.svc_id + 1;
		if (v.table_id >= m->next_table_id)
			m->next_table_id = v.table_id + 1;
	}
	if (m->n_svcs > 1)
		qsort(m->svcs, m->n_svcs, sizeof(*m->svcs), svc_sort_cmp);
	return 0;
}

struct xm_lbmap *lbmap_open(const struct xm_map_fds *fds)
{
	struct xm_lbmap *m = calloc(1, sizeof(*m));
	uint32_t i;

	if (!m)
		return NULL;
	m->maglev_btf_fd = -1;
	m->fds = *fds;
	m->backends = calloc(XM_MAX_BACKENDS, sizeof(*m->backends));
	m->svc_id_used = calloc(XM_MAX_SVC_IDS, 1);
	if (!m->backends || !m->svc_id_used)
		goto fail;
	for (i = 0; i < BACKEND_BUCKETS; i++)
		m->buckets[i] = -1;
	for (i = 0; i < XM_MAX_BACKENDS; i++)
		m->backends[i].next = -1;
	m->next_backend_id = 1;
	m->next_svc_id = XM_MAX_EXT_SVC_IDS;
	m->next_ext_svc_id = 1;
	m->next_table_id = 1;
	maglev_btf_init(m);
	if (adopt_backends(m) || adopt_services(m))
		goto fail;
	drop_orphans(m);
	if (m->n_svcs || m->n_backends)
		log_info("adopted %zu service ports and %u backends from pinned maps", m->n_svcs, m->n_backends);
	return m;
fail:
	log_error("adopt pinned load-balancer maps: out of memory");
	lbmap_free(m);
	return NULL;
}

void lbmap_free(struct xm_lbmap *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n_svcs; i++)
		free(m->svcs[i].ids);
	free(m->svcs);
	free(m->backends);
	free(m->svc_id_used);
	free(m->gc);
	if (m->maglev_btf_fd >= 0)
		close(m->maglev_btf_fd);
	free(m);
}
