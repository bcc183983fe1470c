/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-request endpoint choice for one proxy worker, with Envoy's semantics for Istio's DestinationRule
 * loadBalancer; docs/l7.md ("Per-request load balancing") says where and why it differs from Envoy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7/balance.h"
#include "l7/balance_key.h"
#include "lb/maglev.h"

/* What this worker keeps per cluster of the snapshot in force. */
struct cluster_state {
	const struct l7_cluster *cluster; /* NULL: a free slot */
	/* The endpoint list the state was built for: a stale entry (a cluster freed and its address reused
	 * without a reset) is rebuilt instead of indexing past the new list. */
	const struct xm_lb_backend *const *endpoints;
	size_t n_endpoints;
	size_t rr_next;	   /* ROUND_ROBIN cursor */
	void *maglev;	   /* consistentHash table: uint16_t or uint32_t endpoint indices; NULL until used */
	uint32_t maglev_m; /* its size */
	bool maglev_wide;  /* uint32_t entries (more than 65536 endpoints) */
};

struct l7_balancer {
	uint64_t rng;
	l7_ejected_fn ejected;
	void *ejected_ctx;
	struct cluster_state *slots; /* open addressing by cluster pointer, a power of two long */
	size_t cap, used;
	/* Per-pick memo of ejection answers once an ejected endpoint is met: 2 bits per endpoint. */
	uint64_t *memo;
	size_t memo_words;
};

/* splitmix64: fast, and a worker's sequence is reproducible from its seed (tests use fixed seeds). */
static uint64_t rng_next(struct l7_balancer *b)
{
	b->rng += 0x9e3779b97f4a7c15ULL;
	return xm_mix64(b->rng);
}

static size_t rng_below(struct l7_balancer *b, size_t n)
{
	return (size_t)(((unsigned __int128)rng_next(b) * n) >> 64);
}

struct l7_balancer *l7_balancer_new(uint64_t seed, l7_ejected_fn ejected, void *ejected_ctx)
{
	struct l7_balancer *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->rng = seed;
	b->ejected = ejected;
	b->ejected_ctx = ejected_ctx;
	return b;
}

static void state_clear(struct cluster_state *s)
{
	free(s->maglev);
	memset(s, 0, sizeof(*s));
}

void l7_balancer_reset(struct l7_balancer *b)
{
	for (size_t i = 0; i < b->cap; i++)
		state_clear(&b->slots[i]);
	b->used = 0;
}

void l7_balancer_free(struct l7_balancer *b)
{
	if (!b)
		return;
	l7_balancer_reset(b);
	free(b->slots);
	free(b->memo);
	free(b);
}

static size_t slot_of(const struct l7_cluster *c, size_t cap)
{
	return (size_t)xm_mix64((uint64_t)(uintptr_t)c) & (cap - 1);
}

static int grow_slots(struct l7_balancer *b)
{
	size_t cap = b->cap ? b->cap * 2 : 16;
	struct cluster_state *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < b->cap; i++) {
		size_t j;

		if (!b->slots[i].cluster)
			continue;
		for (j = slot_of(b->slots[i].cluster, cap); slots[j].cluster; j = (j + 1) & (cap - 1))
			;
		slots[j] = b->slots[i];
	}
	free(b->slots);
	b->slots = slots;
	b->cap = cap;
	return 0;
}

/* This worker's state for c, created on first use; NULL only when out of memory. */
static struct cluster_state *state_of(struct l7_balancer *b, const struct l7_cluster *c)
{
	struct cluster_state *s;
	size_t i;

	if (b->cap) {
		for (i = slot_of(c, b->cap); b->slots[i].cluster; i = (i + 1) & (b->cap - 1)) {
			s = &b->slots[i];
			if (s->cluster != c)
				continue;
			if (s->endpoints != c->endpoints || s->n_endpoints != c->n_endpoints) {
				state_clear(s);
				goto init;
			}
			return s;
		}
	}
	if ((b->used + 1) * 2 > b->cap && grow_slots(b))
		return NULL;
	for (i = slot_of(c, b->cap); b->slots[i].cluster; i = (i + 1) & (b->cap - 1))
		;
	s = &b->slots[i];
	b->used++;
init:
	s->cluster = c;
	s->endpoints = c->endpoints;
	s->n_endpoints = c->n_endpoints;
	/* Envoy starts each worker's round robin at a random host, so workers do not move in step. */
	s->rr_next = rng_below(b, c->n_endpoints);
	return s;
}

/*
 * Ejection answers for one pick. The kernel's outlier state is only consulted for a service with outlier
 * detection on (nothing else is ever ejected); once one ejected endpoint is met, every answer is kept, so a
 * fallback asks about each endpoint at most once.
 */
struct health {
	struct l7_balancer *b;
	const struct l7_cluster *c;
	bool checking; /* outlier detection on and a callback set */
	bool memo;     /* memo in use (an ejected endpoint was met) */
};

static void health_init(struct health *h, struct l7_balancer *b, const struct l7_cluster *c)
{
	h->b = b;
	h->c = c;
	h->checking = b->ejected && c->svc && c->svc->outlier_on;
	h->memo = false;
}

static bool ask_ejected(const struct health *h, size_t i)
{
	return h->b->ejected(h->b->ejected_ctx, h->c->svc->svc_id, h->c->endpoints[i]->id);
}

/* Starts the memo; false when out of memory (answers are then asked again each time). */
static bool memo_start(struct health *h)
{
	size_t words = (h->c->n_endpoints * 2 + 63) / 64;

	if (words > h->b->memo_words) {
		uint64_t *m = realloc(h->b->memo, words * sizeof(*m));

		if (!m)
			return false;
		h->b->memo = m;
		h->b->memo_words = words;
	}
	memset(h->b->memo, 0, words * sizeof(uint64_t));
	h->memo = true;
	return true;
}

static bool is_ejected(struct health *h, size_t i)
{
	uint64_t *w, known, ejected;
	bool e;

	if (!h->checking)
		return false;
	if (!h->memo)
		return ask_ejected(h, i);
	w = &h->b->memo[i * 2 / 64];
	known = 1ULL << (i * 2 % 64);
	ejected = known << 1;
	if (*w & known)
		return *w & ejected;
	e = ask_ejected(h, i);
	*w |= known | (e ? ejected : 0);
	return e;
}

/* First answer ejected: from here on, answers are memoized. */
static void health_fallback(struct health *h)
{
	if (h->checking && !h->memo)
		memo_start(h);
}

static size_t count_healthy(struct health *h)
{
	size_t k = 0;

	for (size_t i = 0; i < h->c->n_endpoints; i++)
		k += !is_ejected(h, i);
	return k;
}

/*
 * Envoy's panic routing: below healthy_panic_threshold healthy endpoints, balance over all of them. Istio
 * sets the threshold to outlierDetection.minHealthPercent, 0 by default: panic routing off, and a cluster
 * whose endpoints are all ejected has none to offer (503 UH).
 */
static bool in_panic(struct health *h)
{
	uint32_t min_pct = h->c->policy.outlier.min_health_percent;

	if (!min_pct)
		return false;
	return (uint64_t)count_healthy(h) * 100 < (uint64_t)min_pct * h->c->n_endpoints;
}

/* Uniform among the endpoints that are not ejected; -1 when there are none. */
static int random_healthy(struct l7_balancer *b, struct health *h)
{
	size_t n = h->c->n_endpoints, i = rng_below(b, n), k, j;

	if (!is_ejected(h, i))
		return (int)i;
	health_fallback(h);
	/* A few more draws first: as uniform as the exact path below, and cheaper when ejections are few. */
	for (int tries = 0; tries < 3; tries++) {
		i = rng_below(b, n);
		if (!is_ejected(h, i))
			return (int)i;
	}
	k = count_healthy(h);
	if (!k)
		return -1;
	j = rng_below(b, k);
	for (i = 0; i < n; i++) {
		if (!is_ejected(h, i) && j-- == 0)
			return (int)i;
	}
	return -1;
}

static int pick_round_robin(struct l7_balancer *b, const struct l7_cluster *c, struct health *h)
{
	struct cluster_state *s = state_of(b, c);
	size_t n = c->n_endpoints, i;

	if (!s) /* out of memory: still balanced, just not in turn */
		return random_healthy(b, h);
	i = s->rr_next % n;
	if (!is_ejected(h, i)) {
		s->rr_next = i + 1;
		return (int)i;
	}
	health_fallback(h);
	if (in_panic(h)) {
		s->rr_next = i + 1;
		return (int)i;
	}
	/* Ejected endpoints are passed over, so each healthy one still gets one turn per cycle. */
	for (size_t step = 1; step < n; step++) {
		size_t j = (i + step) % n;

		if (!is_ejected(h, j)) {
			s->rr_next = j + 1;
			return (int)j;
		}
	}
	return -1;
}

static int pick_random(struct l7_balancer *b, const struct l7_cluster *c, struct health *h)
{
	size_t first = rng_below(b, c->n_endpoints);

	if (!is_ejected(h, first))
		return (int)first;
	health_fallback(h);
	if (in_panic(h))
		return (int)first;
	return random_healthy(b, h);
}

/*
 * Envoy's LEAST_REQUEST with equal weights: the less loaded of two endpoints drawn at random among the
 * healthy (choice_count 2), the first drawn on a tie, so equal loads spread like RANDOM.
 */
static int pick_least_request(struct l7_balancer *b, const struct l7_cluster *c, struct health *h)
{
	size_t n = c->n_endpoints;
	size_t a = rng_below(b, n), d = rng_below(b, n);
	int first, second;

	if (!is_ejected(h, a) && !is_ejected(h, d)) {
		first = (int)a;
		second = (int)d;
	} else {
		health_fallback(h);
		if (in_panic(h)) {
			first = (int)a;
			second = (int)d;
		} else {
			first = random_healthy(b, h);
			if (first < 0)
				return -1;
			second = random_healthy(b, h);
		}
	}
	if (l7_active_get(c->endpoints[second]->id) < l7_active_get(c->endpoints[first]->id))
		return second;
	return first;
}

/* A prime above n for a table whose configured size cannot hold n endpoints. */
static uint32_t prime_above(size_t n)
{
	uint64_t m = (uint64_t)n * 100 + 1;

	if (m > XM_MAGLEV_MAX_SIZE)
		m = n + 1;
	while (m <= UINT32_MAX && !maglev_is_prime((uint32_t)m))
		m++;
	return m > UINT32_MAX ? 0 : (uint32_t)m;
}

/*
 * The cluster's Maglev table over its endpoints, built on first use by this worker. Endpoints are keyed like
 * the kernel's tables (family, address, port), so a key keeps its endpoint while others come and go.
 */
static int build_maglev(const struct l7_cluster *c, struct cluster_state *s)
{
	size_t n = c->n_endpoints;
	uint32_t m = c->policy.lb.maglev_table_size;
	uint64_t *keys;
	uint32_t *table;
	int err;

	if (!m)
		m = c->svc && c->svc->maglev_size ? c->svc->maglev_size : XM_MAGLEV_DEFAULT_SIZE;
	if (m <= n || !maglev_is_prime(m))
		m = prime_above(n);
	if (!m)
		return -EINVAL;
	keys = calloc(n, sizeof(*keys));
	table = calloc(m, sizeof(*table));
	if (!keys || !table) {
		free(keys);
		free(table);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct xm_lb_backend *e = c->endpoints[i];
		struct xm_backend canon;

		memset(&canon, 0, sizeof(canon));
		canon.addr = e->addr;
		canon.port = htons(e->port);
		canon.family = e->family;
		keys[i] = maglev_key_of(&canon, offsetof(struct xm_backend, flags));
	}
	err = maglev_build_table(keys, n, table, m);
	free(keys);
	if (err) {
		free(table);
		return err;
	}
	s->maglev_m = m;
	s->maglev_wide = n > (size_t)UINT16_MAX + 1;
	if (!s->maglev_wide) {
		/* Halves what every worker keeps per hashed cluster (128 KiB at the default size). */
		uint16_t *narrow = malloc(m * sizeof(*narrow));

		if (narrow) {
			for (uint32_t i = 0; i < m; i++)
				narrow[i] = (uint16_t)table[i];
			free(table);
			s->maglev = narrow;
			return 0;
		}
		s->maglev_wide = true;
	}
	s->maglev = table;
	return 0;
}

static size_t maglev_entry(const struct cluster_state *s, uint32_t slot)
{
	return s->maglev_wide ? ((const uint32_t *)s->maglev)[slot] : ((const uint16_t *)s->maglev)[slot];
}

/* A fresh cookie value: 16 hex digits, like Envoy's. */
static void new_cookie_value(struct l7_balancer *b, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)rng_next(b));
}

static int pick_consistent_hash(struct l7_balancer *b, const struct l7_cluster *c, const struct l7_request_view *rq,
				const union xm_addr *client, uint8_t family, struct health *h, struct l7_pick *out)
{
	const struct xm_load_balancer *lb = &c->policy.lb;
	struct cluster_state *s;
	size_t n = c->n_endpoints, first, i;
	uint64_t hash;
	uint32_t slot;

	if (!l7_balance_key_hash(lb, rq, client, family, &hash)) {
		if (lb->hash_key == XM_DR_HASH_HTTP_COOKIE && lb->cookie_ttl_set) {
			char value[17];

			/* Envoy issues the cookie and balances on it, so the next request sticks to this pick. */
			new_cookie_value(b, value);
			l7_balance_set_cookie(lb, value, out->set_cookie, sizeof(out->set_cookie));
			hash = l7_key_hash(value, strlen(value));
		} else {
			/* No key: Envoy hashes a random number, which is RANDOM over the table. */
			hash = rng_next(b);
		}
	}
	s = state_of(b, c);
	if (n == 1 || !s || (!s->maglev && build_maglev(c, s))) {
		/* One endpoint; or no memory for a table: the same key still maps to the same endpoint. */
		first = hash % n;
		if (!is_ejected(h, first))
			return (int)first;
		health_fallback(h);
		if (in_panic(h))
			return (int)first;
		for (size_t step = 1; step < n; step++) {
			if (!is_ejected(h, (first + step) % n))
				return (int)((first + step) % n);
		}
		return -1;
	}
	slot = (uint32_t)(hash % s->maglev_m);
	first = maglev_entry(s, slot);
	if (!is_ejected(h, first))
		return (int)first;
	health_fallback(h);
	if (in_panic(h))
		return (int)first;
	if (!count_healthy(h))
		return -1;
	/*
	 * Probe on from a second position derived from the key (as the kernel does), so an ejected endpoint's
	 * keys spread over the others and each key keeps the same fallback while the ejection lasts. Envoy
	 * rebuilds the table without the ejected host instead, which moves a few keys of healthy hosts too.
	 * Every endpoint owns slots, so the walk ends within one pass.
	 */
	slot = (uint32_t)(xm_mix64(hash + 1) % s->maglev_m);
	for (uint32_t step = 0; step < s->maglev_m; step++) {
		i = maglev_entry(s, slot);
		if (!is_ejected(h, i))
			return (int)i;
		slot = slot + 1 == s->maglev_m ? 0 : slot + 1;
	}
	return -1;
}

bool l7_balance_counts_active(const struct l7_cluster *c)
{
	switch (c->policy.lb.simple) {
	case XM_DR_LB_ROUND_ROBIN:
	case XM_DR_LB_RANDOM:
	case XM_DR_LB_CONSISTENT_HASH:
		return false;
	default: /* what l7_balance_pick treats as LEAST_REQUEST */
		return true;
	}
}

void l7_balance_pick(struct l7_balancer *b, const struct l7_cluster *c, const struct l7_request_view *rq,
		     const union xm_addr *client, uint8_t family, struct l7_pick *out)
{
	struct health h;

	out->index = -1;
	out->set_cookie[0] = '\0';
	if (!c || !c->n_endpoints)
		return;
	health_init(&h, b, c);
	switch (c->policy.lb.simple) {
	case XM_DR_LB_ROUND_ROBIN:
		out->index = pick_round_robin(b, c, &h);
		break;
	case XM_DR_LB_RANDOM:
		out->index = pick_random(b, c, &h);
		break;
	case XM_DR_LB_CONSISTENT_HASH:
		out->index = pick_consistent_hash(b, c, rq, client, family, &h, out);
		break;
	case XM_DR_LB_UNSET: /* Istio's default */
	case XM_DR_LB_LEAST_REQUEST:
	case XM_DR_LB_PASSTHROUGH: /* no original destination to pass to behind a VIP: see docs/l7.md */
	default:
		out->index = pick_least_request(b, c, &h);
		break;
	}
}
