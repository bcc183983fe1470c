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
		l7_shared_put(t->ratelimits[i]->bucket);
		free(t->ratelimits[i]->extra);
		free(t->ratelimits[i]);
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

/* Envoy's filter for one limit: true when it answered the request. */
static bool apply_one(struct l7_down *d, const struct l7_ratelimit *rl, uint64_t *now)
{
	struct l7_worker *w = d->w;

	if (!sampled(w, rl->enabled_ppm))
		return false;
	if (!*now)
		*now = mono_ns();
	if (l7_bucket_take(rl->bucket, rl, *now))
		return false;
	if (!sampled(w, rl->enforced_ppm)) {
		atomic_fetch_add_explicit(&rl->bucket->v[L7_RL_NOT_ENFORCED], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->c.ratelimit_not_enforced, 1, memory_order_relaxed);
		return false;
	}
	atomic_fetch_add_explicit(&rl->bucket->v[L7_RL_LIMITED], 1, memory_order_relaxed);
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

bool l7_ratelimit_check(struct l7_down *d, const struct l7_cluster *cluster, int idx)
{
	const struct l7_route_table *t = d->x.hold ? d->x.hold->routes : NULL;
	const struct l7_ratelimit *out = t ? client_limit(t, d->x.source) : NULL;
	const struct l7_ratelimit *in = cluster->endpoint_rl ? cluster->endpoint_rl[idx] : NULL;
	uint64_t now = 0;

	if (out && out->port && out->port != ntohs(d->vip.port))
		out = NULL;
	return (out && apply_one(d, out, &now)) || (in && apply_one(d, in, &now));
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
