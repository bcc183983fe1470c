// SPDX-License-Identifier: Apache-2.0
/*
 * Local rate limits (ratelimit.h): compiled from the EnvoyFilters into the route table, enforced by the
 * workers through token buckets in worker-shared state.
 *
 * The bucket is Envoy's AtomicTokenBucket (the only one since Envoy 1.31; the timer-refilled one is gone):
 * tokens come back continuously at tokens_per_fill / fill_interval per second up to max_tokens, and the
 * whole state is one number, the time at which the bucket was empty, moved forward by compare-and-swap.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/envoy_filter.h"
#include "core/grow.h"
#include "core/strbuf.h"
#include "http/h1.h"
#include "l7/ratelimit.h"
#include "l7/record.h"
#include "l7/request_id.h"
#include "l7/routes.h"
#include "l7/worker.h"

#define ROOT_NAMESPACE "istio-system" /* Istio's default config root namespace */

static double get_d(const struct l7_shared *b, int slot)
{
	long long bits = atomic_load_explicit(&((struct l7_shared *)b)->v[slot], memory_order_relaxed);
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static long long d_bits(double d)
{
	long long bits;

	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

static double rate_per_s(const struct l7_ratelimit *rl)
{
	return (double)rl->tokens_per_fill * 1e9 / (double)rl->fill_interval_ns;
}

static double seconds_since_epoch(const struct l7_shared *b, uint64_t now_ns)
{
	long long epoch = atomic_load_explicit(&((struct l7_shared *)b)->v[L7_RL_EPOCH], memory_order_relaxed);

	return now_ns > (uint64_t)epoch ? (double)(now_ns - (uint64_t)epoch) / 1e9 : 0.0;
}

void l7_bucket_init(struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns)
{
	atomic_store_explicit(&b->v[L7_RL_EPOCH], (long long)now_ns, memory_order_relaxed);
	/* full now: empty max_tokens / rate seconds ago */
	atomic_store_explicit(&b->v[L7_RL_EMPTY_AT], d_bits(-(double)rl->max_tokens / rate_per_s(rl)),
			      memory_order_relaxed);
}

double l7_bucket_tokens(const struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns)
{
	double t = (seconds_since_epoch(b, now_ns) - get_d(b, L7_RL_EMPTY_AT)) * rate_per_s(rl);

	return t > rl->max_tokens ? rl->max_tokens : t < 0 ? 0 : t;
}

bool l7_bucket_take(struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns)
{
	const double rate = rate_per_s(rl);
	const double now = seconds_since_epoch(b, now_ns);
	long long old = atomic_load_explicit(&b->v[L7_RL_EMPTY_AT], memory_order_relaxed);

	for (;;) {
		double empty_at, tokens;

		memcpy(&empty_at, &old, sizeof(empty_at));
		tokens = (now - empty_at) * rate;
		if (tokens > rl->max_tokens)
			tokens = rl->max_tokens;
		if (tokens < 1.0)
			return false;
		/* what is left after this token, as the time the bucket was empty */
		if (atomic_compare_exchange_weak_explicit(&b->v[L7_RL_EMPTY_AT], &old,
							  d_bits(now - (tokens - 1.0) / rate), memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	}
}

/* --- build --- */

static bool selects(const struct xm_envoy_filter *ef, const struct xm_workload *wl)
{
	if (strcmp(ef->ns, ROOT_NAMESPACE) && strcmp(ef->ns, wl->ns))
		return false;
	for (size_t i = 0; i < ef->n_labels; i++) {
		const char *v = workload_label(wl, ef->labels[i].key);

		if (!v || strcmp(v, ef->labels[i].value))
			return false;
	}
	return true;
}

struct rl_builder {
	struct l7_route_table *t;
	size_t cap;
	uint64_t now_ns;
	/* made limits by (workload, limit, role): open addressing, index + 1 */
	struct slot {
		const struct xm_workload *wl;
		const struct xm_ef_ratelimit *lim;
		enum l7_rl_role role;
		uint16_t port;
		size_t idx;
	} * slots;
	size_t n_slots;
};

static size_t slot_hash(const struct xm_workload *wl, const struct xm_ef_ratelimit *lim, enum l7_rl_role role,
			uint16_t port)
{
	uint64_t h = (uint64_t)(uintptr_t)wl * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)lim * 0xC2B2AE3D27D4EB4Full;

	return (size_t)((h ^ (h >> 29)) + role + 2u * port);
}

static int grow_slots(struct rl_builder *b)
{
	struct slot *old = b->slots;
	size_t n_old = b->n_slots, n = n_old ? n_old * 2 : 64;

	if (2 * (b->t->n_ratelimits + 1) <= n_old)
		return 0;
	b->slots = calloc(n, sizeof(*b->slots));
	if (!b->slots) {
		b->slots = old;
		return -ENOMEM;
	}
	b->n_slots = n;
	for (size_t i = 0; i < n_old; i++) {
		size_t j;

		if (!old[i].idx)
			continue;
		for (j = slot_hash(old[i].wl, old[i].lim, old[i].role, old[i].port) & (n - 1); b->slots[j].idx;
		     j = (j + 1) & (n - 1))
			;
		b->slots[j] = old[i];
	}
	free(old);
	return 0;
}

static char *headers_extra(const struct xm_local_ratelimit *rl, bool *oom)
{
	struct strbuf sb = { 0 };

	for (size_t i = 0; i < rl->n_headers; i++)
		if (rl->headers[i].name && rl->headers[i].value)
			sb_printf(&sb, "%s: %s\r\n", rl->headers[i].name, rl->headers[i].value);
	if (sb.oom || !sb.len) {
		*oom = sb.oom;
		sb_free(&sb);
		return NULL;
	}
	return sb.buf;
}

static double fill_rate(const struct l7_ratelimit *rl)
{
	return (double)rl->tokens_per_fill / (double)rl->fill_interval_ns;
}

/* One object per descriptor of lim, in t->ratelimits too, keyed by the parent's key and the entries. */
static int add_descriptors(struct rl_builder *b, const struct xm_ef_ratelimit *lim, struct l7_ratelimit *rl,
			   const char *parent_key)
{
	struct l7_route_table *t = b->t;

	if (!(rl->descs = calloc(lim->rl.n_descriptors, sizeof(*rl->descs))))
		return -ENOMEM;
	if (lim->n_policies && !(rl->policies = xm_rl_policies_dup(lim->policies, lim->n_policies)))
		return -ENOMEM;
	rl->n_policies = lim->n_policies;
	for (size_t i = 0; i < lim->rl.n_descriptors; i++) {
		const struct xm_rl_descriptor *x = &lim->rl.descriptors[i];
		struct l7_ratelimit *d;
		struct strbuf key = { 0 };
		size_t k;

		if (XM_GROW(t->ratelimits, b->cap, t->n_ratelimits + 1) || !(d = calloc(1, sizeof(*d))))
			return -ENOMEM;
		t->ratelimits[t->n_ratelimits++] = d; /* freed with the table from here on */
		memcpy(d->filter, rl->filter, sizeof(d->filter));
		memcpy(d->pod, rl->pod, sizeof(d->pod));
		d->role = rl->role;
		d->per_route = rl->per_route;
		d->port = rl->port;
		d->patch = rl->patch;
		d->enabled_ppm = rl->enabled_ppm;
		d->enforced_ppm = rl->enforced_ppm;
		d->status = rl->status;
		d->parent = rl;
		d->max_tokens = x->max_tokens;
		d->tokens_per_fill = x->tokens_per_fill;
		d->fill_interval_ns = x->fill_interval_ms * 1000000ull;
		if (!(d->kv = calloc(2 * x->n_entries + 1, sizeof(*d->kv))))
			return -ENOMEM;
		d->n_entries = x->n_entries;
		sb_printf(&key, "%s|desc", parent_key);
		for (size_t e = 0; e < x->n_entries; e++) {
			if (!(d->kv[2 * e] = strdup(x->entries[e].key)) ||
			    !(d->kv[2 * e + 1] = strdup(x->entries[e].value))) {
				sb_free(&key);
				return -ENOMEM;
			}
			/* lengths first: no separator in a key or value can make two descriptors one key */
			sb_printf(&key, "|%zu:%s=%zu:%s", strlen(x->entries[e].key), x->entries[e].key,
				  strlen(x->entries[e].value), x->entries[e].value);
		}
		sb_printf(&key, "|%u|%u|%llu", d->max_tokens, d->tokens_per_fill,
			  (unsigned long long)d->fill_interval_ns);
		d->bucket = key.oom ? NULL : l7_shared_new(key.buf);
		sb_free(&key);
		if (!d->bucket)
			return -ENOMEM;
		l7_bucket_init(d->bucket, d, b->now_ns);
		/* Envoy consumes the matched descriptors' buckets slowest fill rate first (insertion, stable) */
		for (k = rl->n_descs; k > 0 && fill_rate(rl->descs[k - 1]) > fill_rate(d); k--)
			rl->descs[k] = rl->descs[k - 1];
		rl->descs[k] = d;
		rl->n_descs++;
	}
	return 0;
}

/*
 * The limit object of (wl, lim, role, port), made on first use; NULL when out of memory. Inbound, port is the
 * pod's port: Istio gives each inbound port its own filter chain and HTTP connection manager, so each gets its
 * own instance of the filter and its own bucket.
 */
static const struct l7_ratelimit *limit_of(struct rl_builder *b, const struct xm_envoy_filter *ef,
					   const struct xm_ef_ratelimit *lim, const struct xm_workload *wl,
					   enum l7_rl_role role, uint16_t port)
{
	struct l7_route_table *t = b->t;
	struct l7_ratelimit *rl;
	char key[768];
	bool oom = false;
	size_t j;

	if (grow_slots(b))
		return NULL;
	for (j = slot_hash(wl, lim, role, port) & (b->n_slots - 1); b->slots[j].idx; j = (j + 1) & (b->n_slots - 1))
		if (b->slots[j].wl == wl && b->slots[j].lim == lim && b->slots[j].role == role &&
		    b->slots[j].port == port)
			return t->ratelimits[b->slots[j].idx - 1];
	if (XM_GROW(t->ratelimits, b->cap, t->n_ratelimits + 1) || !(rl = calloc(1, sizeof(*rl))))
		return NULL;
	snprintf(rl->filter, sizeof(rl->filter), "%s/%s", ef->ns, ef->name);
	snprintf(rl->pod, sizeof(rl->pod), "%s/%s", wl->ns, wl->pod);
	rl->role = role;
	rl->per_route = lim->route;
	rl->port = port;
	rl->patch = lim->patch;
	rl->max_tokens = lim->rl.max_tokens;
	rl->tokens_per_fill = lim->rl.tokens_per_fill;
	rl->fill_interval_ns = lim->rl.fill_interval_ms * 1000000ull;
	rl->enabled_ppm = lim->rl.enabled_ppm;
	rl->enforced_ppm = lim->rl.enforced_ppm;
	rl->status = lim->rl.status;
	rl->extra = headers_extra(&lim->rl, &oom);
	/* A changed limit is a new bucket (full); an unchanged one carries its tokens over an apply. */
	snprintf(key, sizeof(key), "ratelimit|%s|%zu|%s|%s|%u|%u|%u|%llu", role == L7_RL_INBOUND ? "in" : "out",
		 rl->patch, rl->filter, rl->pod, rl->port, rl->max_tokens, rl->tokens_per_fill,
		 (unsigned long long)rl->fill_interval_ns);
	rl->bucket = l7_shared_new(key);
	if (!rl->bucket || oom) {
		l7_shared_put(rl->bucket);
		free(rl->extra);
		free(rl);
		return NULL;
	}
	l7_bucket_init(rl->bucket, rl, b->now_ns);
	t->ratelimits[t->n_ratelimits++] = rl;
	b->slots[j] = (struct slot){ wl, lim, role, port, t->n_ratelimits };
	rl->always_consume_default = lim->rl.always_consume_default;
	if (lim->rl.n_descriptors && add_descriptors(b, lim, rl, key))
		return NULL; /* rl is in the table: freed with it */
	return rl;
}

/*
 * Istio's order of EnvoyFilters for a workload: the config root namespace's, then the others (each set by
 * namespace/name, the config's order). k runs over twice the filters: NULL when the k-th is not in its pass.
 */
static const struct xm_envoy_filter *nth_filter(const struct xm_config *cfg, size_t k)
{
	const struct xm_envoy_filter *ef = &cfg->envoy_filters[k % cfg->n_envoy_filters];
	bool root = !strcmp(ef->ns, ROOT_NAMESPACE);

	return (k < cfg->n_envoy_filters) == root ? ef : NULL;
}

/*
 * The inbound limit of pod wl on its port: the first EnvoyFilter (in nth_filter's order) that limits it; in it a
 * per-route limit of that port (typed_per_filter_config overrides the filter's config) before the filter's.
 */
static const struct xm_ef_ratelimit *inbound_limit(const struct xm_config *cfg, const struct xm_workload *wl,
						   uint16_t port, const struct xm_envoy_filter **efp)
{
	for (size_t k = 0; k < 2 * cfg->n_envoy_filters; k++) {
		const struct xm_envoy_filter *ef = nth_filter(cfg, k);
		const struct xm_ef_ratelimit *best = NULL;

		if (!ef || !ef->n_limits || !selects(ef, wl))
			continue;
		for (size_t i = 0; i < ef->n_limits; i++) {
			const struct xm_ef_ratelimit *l = &ef->limits[i];

			if (l->context == XM_EF_SIDECAR_OUTBOUND || (l->port && l->port != port))
				continue;
			if (l->route && ef->inserts_filter && (!best || !best->route))
				best = l;
			else if (!l->route && !best)
				best = l;
		}
		if (best) {
			*efp = ef;
			return best;
		}
	}
	return NULL;
}

static int client_cmp(const void *a, const void *b)
{
	const struct l7_rl_client *x = a, *y = b;

	return x->wl < y->wl ? -1 : x->wl > y->wl;
}

int l7_ratelimit_build(const struct xm_config *cfg, const struct xm_identities *ids, struct l7_route_table *t,
		       uint64_t now_ns)
{
	struct rl_builder b = { .t = t, .now_ns = now_ns };
	size_t cap_clients = 0;
	int err = 0;

	if (!cfg->n_envoy_filters)
		return 0;
	for (size_t c = 0; !err && c < t->n_clusters; c++) {
		struct l7_cluster *cl = &t->clusters[c];

		for (size_t i = 0; !err && cl->endpoint_wl && i < cl->n_endpoints; i++) {
			const struct xm_envoy_filter *ef = NULL;
			const struct xm_ef_ratelimit *lim;

			if (!cl->endpoint_wl[i])
				continue;
			lim = inbound_limit(cfg, cl->endpoint_wl[i], cl->endpoints[i]->port, &ef);
			if (!lim)
				continue;
			if (!cl->endpoint_rl && !(cl->endpoint_rl = calloc(cl->n_endpoints, sizeof(*cl->endpoint_rl))))
				err = -ENOMEM;
			else if (!(cl->endpoint_rl[i] = limit_of(&b, ef, lim, cl->endpoint_wl[i], L7_RL_INBOUND,
								 cl->endpoints[i]->port)))
				err = -ENOMEM;
		}
	}
	/* Client pods: the first EnvoyFilter with a filter-level limit for their outbound listeners. */
	for (size_t w = 0; !err && ids && w < ids->n_workloads; w++) {
		const struct xm_workload *wl = &ids->workloads[w];
		const struct l7_ratelimit *rl = NULL;

		for (size_t k = 0; !rl && !err && k < 2 * cfg->n_envoy_filters; k++) {
			const struct xm_envoy_filter *ef = nth_filter(cfg, k);

			for (size_t i = 0; ef && !rl && !err && i < ef->n_limits; i++) {
				const struct xm_ef_ratelimit *l = &ef->limits[i];

				if (l->route || l->context == XM_EF_SIDECAR_INBOUND || !selects(ef, wl))
					continue;
				rl = limit_of(&b, ef, l, wl, L7_RL_OUTBOUND, l->port);
				if (!rl)
					err = -ENOMEM;
			}
		}
		if (rl && XM_GROW(t->rl_clients, cap_clients, t->n_rl_clients + 1))
			err = -ENOMEM;
		else if (rl)
			t->rl_clients[t->n_rl_clients++] = (struct l7_rl_client){ wl, rl };
	}
	if (t->n_rl_clients > 1)
		qsort(t->rl_clients, t->n_rl_clients, sizeof(*t->rl_clients), client_cmp);
	free(b.slots);
	return err;
}

void l7_ratelimit_free(struct l7_route_table *t)
{
	for (size_t i = 0; i < t->n_clusters; i++) {
		free(t->clusters[i].endpoint_rl);
		t->clusters[i].endpoint_rl = NULL;
	}
	for (size_t i = 0; i < t->n_ratelimits; i++) {
		struct l7_ratelimit *rl = t->ratelimits[i];

		l7_shared_put(rl->bucket);
		free(rl->extra);
		xm_rl_policies_free(rl->policies, rl->n_policies);
		free(rl->descs);
		for (size_t e = 0; rl->kv && e < 2 * rl->n_entries; e++)
			free(rl->kv[e]);
		free(rl->kv);
		free(rl);
	}
	free(t->ratelimits);
	free(t->rl_clients);
	t->ratelimits = NULL;
	t->rl_clients = NULL;
	t->n_ratelimits = t->n_rl_clients = 0;
}

/* --- the worker's check --- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool sampled(struct l7_worker *w, uint32_t ppm)
{
	return ppm >= 1000000 || (ppm && l7_rng_below(&w->rng, 1000000) < ppm);
}

/* A request header's value (the first of that name), or the pseudo-headers :path, :method, :authority. */
static bool header_of(const struct h1_request *req, const char *name, struct h1_str *v)
{
	const struct h1_header *h;

	if (!req)
		return false;
	if (name[0] == ':') {
		/* :path is origin-form (path and query); of an absolute-form target, its path */
		if (!strcmp(name, ":path"))
			*v = req->target.len && req->target.p[0] == '/' ? req->target : req->path;
		else
			*v = !strcmp(name, ":method") ? req->method : req->host;
		return v->len > 0;
	}
	h = h1_find(req->headers, req->n_headers, name);
	if (h)
		*v = h->value;
	return h != NULL;
}

static bool str_eq(struct h1_str a, const char *b)
{
	size_t n = strlen(b);

	return a.len == n && !memcmp(a.p, b, n);
}

/* Envoy's HeaderUtility::matchHeaders for one matcher. */
static bool hmatch(const struct xm_rl_hmatch *m, const struct h1_request *req)
{
	struct h1_str v;
	bool present = header_of(req, m->name, &v), r;

	if (m->kind == XM_RLH_PRESENT)
		r = present == m->present;
	else if (!present)
		r = false;
	else if (m->kind == XM_RLH_EXACT)
		r = str_eq(v, m->value);
	else
		r = v.len >= strlen(m->value) && !memcmp(v.p, m->value, strlen(m->value));
	return m->invert ? !r : r;
}

/*
 * Whether the descriptor that policy p makes for req (Envoy: each action appends an entry; an action that cannot
 * makes no descriptor, request_headers with skip_if_absent only skips its entry) equals d's entries.
 */
static bool policy_makes(const struct xm_rl_policy *p, const struct h1_request *req, const struct l7_ratelimit *d)
{
	size_t e = 0;

	for (size_t a = 0; a < p->n_actions; a++) {
		const struct xm_rl_action *x = &p->actions[a];
		struct h1_str v = { 0 };
		bool ok = true;

		switch (x->kind) {
		case XM_RLA_REQUEST_HEADERS:
			if (!header_of(req, x->value, &v)) {
				if (x->skip_if_absent)
					continue;
				return false;
			}
			ok = e < d->n_entries && !strcmp(d->kv[2 * e], x->key) && str_eq(v, d->kv[2 * e + 1]);
			break;
		case XM_RLA_GENERIC_KEY:
			ok = e < d->n_entries && !strcmp(d->kv[2 * e], x->key) && !strcmp(d->kv[2 * e + 1], x->value);
			break;
		case XM_RLA_HEADER_VALUE_MATCH: {
			bool all = true;

			for (size_t h = 0; all && h < x->n_headers; h++)
				all = hmatch(&x->headers[h], req);
			if (all != x->expect_match)
				return false;
			ok = e < d->n_entries && !strcmp(d->kv[2 * e], x->key) && !strcmp(d->kv[2 * e + 1], x->value);
			break;
		}
		}
		if (!ok)
			return false;
		e++;
	}
	return e == d->n_entries;
}

const struct l7_ratelimit *l7_ratelimit_take(const struct l7_ratelimit *rl, const struct h1_request *req,
					     uint64_t now_ns)
{
	bool matched = false;

	for (size_t i = 0; i < rl->n_descs; i++) {
		const struct l7_ratelimit *d = rl->descs[i];

		for (size_t p = 0; p < rl->n_policies; p++) {
			if (!policy_makes(&rl->policies[p], req, d))
				continue;
			matched = true;
			if (!l7_bucket_take(d->bucket, d, now_ns))
				return d;
		}
	}
	if ((!matched || rl->always_consume_default) && !l7_bucket_take(rl->bucket, rl, now_ns))
		return rl;
	return NULL;
}

/* Envoy's filter for one limit: true when it answered the request. */
static bool apply_one(struct l7_down *d, const struct h1_request *req, const struct l7_ratelimit *rl, uint64_t *now)
{
	struct l7_worker *w = d->w;
	const struct l7_ratelimit *by;

	if (!sampled(w, rl->enabled_ppm))
		return false;
	if (!*now)
		*now = mono_ns();
	by = l7_ratelimit_take(rl, req, *now);
	if (!by)
		return false;
	if (!sampled(w, rl->enforced_ppm)) {
		atomic_fetch_add_explicit(&by->bucket->v[L7_RL_NOT_ENFORCED], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->c.ratelimit_not_enforced, 1, memory_order_relaxed);
		return false;
	}
	atomic_fetch_add_explicit(&by->bucket->v[L7_RL_LIMITED], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->c.ratelimited, 1, memory_order_relaxed);
	d->x.details = "local_rate_limited"; /* Envoy's %RESPONSE_CODE_DETAILS% */
	l7_exchange_local_reply(d, rl->status, L7_RF_RL, rl->extra, "local_rate_limited", 18);
	return true;
}

static const struct l7_ratelimit *client_limit(const struct l7_route_table *t, const struct xm_workload *wl)
{
	struct l7_rl_client key = { .wl = wl };
	const struct l7_rl_client *hit;

	if (!wl || !t->n_rl_clients)
		return NULL;
	hit = bsearch(&key, t->rl_clients, t->n_rl_clients, sizeof(key), client_cmp);
	return hit ? hit->rl : NULL;
}

bool l7_ratelimit_check(struct l7_down *d, const struct h1_request *req, const struct l7_cluster *cluster, int idx)
{
	const struct l7_route_table *t = d->x.hold ? d->x.hold->routes : NULL;
	const struct l7_ratelimit *out = t ? client_limit(t, d->x.source) : NULL;
	const struct l7_ratelimit *in = cluster->endpoint_rl ? cluster->endpoint_rl[idx] : NULL;
	uint64_t now = 0;

	if (out && out->port && out->port != ntohs(d->vip.port))
		out = NULL;
	return (out && apply_one(d, req, out, &now)) || (in && apply_one(d, req, in, &now));
}

/* --- `xmesh routes` --- */

static void render_one(const struct l7_route_table *t, const struct l7_ratelimit *rl, bool json, uint64_t now,
		       struct strbuf *out)
{
	const char *role = rl->role == L7_RL_INBOUND ? "inbound" : "outbound";
	double tokens = l7_bucket_tokens(rl->bucket, rl, now);
	unsigned long long limited = (unsigned long long)atomic_load(&rl->bucket->v[L7_RL_LIMITED]);
	unsigned long long passed = (unsigned long long)atomic_load(&rl->bucket->v[L7_RL_NOT_ENFORCED]);
	bool first = true;

	if (json) {
		sb_puts(out, "{\"envoyFilter\":");
		sb_json_str(out, rl->filter);
		sb_printf(out, ",\"patch\":%zu,\"pod\":", rl->patch);
		sb_json_str(out, rl->pod);
		for (size_t e = 0; rl->parent && e < rl->n_entries; e++) {
			sb_puts(out, e ? ",{\"key\":" : ",\"descriptor\":[{\"key\":");
			sb_json_str(out, rl->kv[2 * e]);
			sb_puts(out, ",\"value\":");
			sb_json_str(out, rl->kv[2 * e + 1]);
			sb_puts(out, e + 1 == rl->n_entries ? "}]" : "}");
		}
		sb_printf(out,
			  ",\"direction\":\"%s\",\"perRoute\":%s,\"port\":%u,\"maxTokens\":%u,\"tokensPerFill\":%u,"
			  "\"fillIntervalMs\":%llu,\"enabledPercent\":%.4g,\"enforcedPercent\":%.4g,\"status\":%u,"
			  "\"tokens\":%.3f,\"rateLimited\":%llu,\"notEnforced\":%llu,\"endpoints\":[",
			  role, rl->per_route ? "true" : "false", rl->port, rl->max_tokens, rl->tokens_per_fill,
			  (unsigned long long)(rl->fill_interval_ns / 1000000), rl->enabled_ppm / 1e4,
			  rl->enforced_ppm / 1e4, rl->status, tokens, limited, passed);
	} else {
		sb_printf(out, "  %s %s pod %s", role, rl->filter, rl->pod);
		if (rl->port)
			sb_printf(out, " port %u", rl->port);
		for (size_t e = 0; rl->parent && e < rl->n_entries; e++)
			sb_printf(out, "%s%s=%s%s", e ? ", " : " descriptor [", rl->kv[2 * e], rl->kv[2 * e + 1],
				  e + 1 == rl->n_entries ? "]" : "");
		sb_printf(out,
			  "%s: %u tokens, %u per %llums, enabled %.4g%% enforced %.4g%%, status %u; now %.2f tokens, "
			  "%llu limited, %llu not enforced\n",
			  rl->per_route ? " (per route)" : "", rl->max_tokens, rl->tokens_per_fill,
			  (unsigned long long)(rl->fill_interval_ns / 1000000), rl->enabled_ppm / 1e4,
			  rl->enforced_ppm / 1e4, rl->status, tokens, limited, passed);
		if (rl->extra)
			sb_printf(out, "    response headers: %.*s\n", (int)strcspn(rl->extra, "\r"), rl->extra);
	}
	for (size_t c = 0; c < t->n_clusters; c++) {
		const struct l7_cluster *cl = &t->clusters[c];

		for (size_t i = 0; cl->endpoint_rl && i < cl->n_endpoints; i++) {
			char addr[64];

			if (cl->endpoint_rl[i] != rl)
				continue;
			if (!inet_ntop(cl->endpoints[i]->family == XM_FAMILY_V4 ? AF_INET : AF_INET6,
				       &cl->endpoints[i]->addr, addr, sizeof(addr)))
				addr[0] = '\0';
			if (json) {
				sb_puts(out, first ? "{\"cluster\":" : ",{\"cluster\":");
				sb_json_str(out, cl->name);
				sb_puts(out, ",\"address\":");
				sb_json_str(out, addr);
				sb_printf(out, ",\"port\":%u}", cl->endpoints[i]->port);
			} else {
				sb_printf(out, "    endpoint %s %s:%u\n", cl->name, addr, cl->endpoints[i]->port);
			}
			first = false;
		}
	}
	if (json)
		sb_puts(out, "]}");
}

void l7_ratelimit_render(const struct l7_route_table *t, bool json, struct strbuf *out)
{
	uint64_t now = mono_ns();

	if (!t->n_ratelimits)
		return; /* the document stays as it was without EnvoyFilters */
	if (json)
		sb_puts(out, ",\"rateLimits\":[");
	else
		sb_puts(out, "rate limits (EnvoyFilter envoy.filters.http.local_ratelimit)\n");
	for (size_t i = 0; i < t->n_ratelimits; i++) {
		if (json && i)
			sb_puts(out, ",");
		render_one(t, t->ratelimits[i], json, now, out);
	}
	if (json)
		sb_puts(out, "]");
}

uint64_t l7_ratelimit_clock_ns(void)
{
	return mono_ns();
}
