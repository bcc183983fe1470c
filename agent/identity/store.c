// SPDX-License-Identifier: Apache-2.0
/*
 * This node's workload certificates by identity. The control loop builds a new table on every change and
 * swaps it in under a short lock; readers take the table's pointer and a certificate reference under the
 * same lock, and never wait for a mint (minting happens before the swap, outside the lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "identity/internal.h"

struct cert_table {
	atomic_uint refs;
	struct xm_cert **certs; /* sorted by spiffe, unique */
	size_t n;
};

struct xm_identity_store {
	pthread_mutex_t lock; /* guards cur and bundle against the swap */
	struct cert_table *cur;
	struct xm_trust_bundle *bundle; /* a reference */
	atomic_ullong generation;	/* tables swapped in: a certificate was minted, renewed or dropped */
};

static void table_put(struct cert_table *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < t->n; i++)
		cert_put(t->certs[i]);
	free(t->certs);
	free(t);
}

static struct cert_table *table_acquire(struct xm_identity_store *s)
{
	struct cert_table *t;

	pthread_mutex_lock(&s->lock);
	t = s->cur;
	if (t)
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
	return t;
}

struct xm_identity_store *identity_store_new(void)
{
	struct xm_identity_store *s = calloc(1, sizeof(*s));

	if (s)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

void identity_store_free(struct xm_identity_store *s)
{
	if (!s)
		return;
	table_put(s->cur);
	bundle_put(s->bundle);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static struct xm_cert *table_find(const struct cert_table *t, const char *uri)
{
	size_t lo = 0, hi = t ? t->n : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(uri, t->certs[mid]->spiffe);

		if (!c)
			return t->certs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int identity_store_sync(struct xm_identity_store *s, struct xm_ca *ca, const char *const *uris, size_t n, int64_t now,
			uint32_t ttl_s, struct xm_store_sync_result *res)
{
	struct xm_store_sync_result r = { 0 };
	struct cert_table *old = s->cur, *t; /* the control loop is the only writer: no lock to read cur */
	const char **sorted = calloc(n ? n : 1, sizeof(*sorted));
	bool changed = false;

	t = calloc(1, sizeof(*t));
	if (t)
		t->certs = calloc(n ? n : 1, sizeof(*t->certs));
	if (!sorted || !t || !t->certs) {
		free(sorted);
		if (t)
			free(t->certs);
		free(t);
		return -ENOMEM;
	}
	atomic_init(&t->refs, 1);
	if (n)
		memcpy(sorted, uris, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), str_cmp);
	for (size_t i = 0; i < n; i++) {
		struct xm_cert *have, *fresh;
		int err;

		if (i && !strcmp(sorted[i], sorted[i - 1]))
			continue;
		bool reissue;

		have = table_find(old, sorted[i]);
		/* After a CA reload, not at half-life: peers may stop trusting the old issuer any time now. */
		reissue = have && !ca_issued(ca, have);
		if (have && now < have->renew_at && !reissue) {
			t->certs[t->n++] = cert_get(have);
			continue;
		}
		fresh = ca_mint(ca, sorted[i], now, ttl_s, &err);
		if (!fresh) {
			r.failed++;
			log_warn("identity %s: minting a certificate: %s%s", sorted[i], strerror(-err),
				 have ? "; keeping the current one until the next try" : "");
			if (have)
				t->certs[t->n++] = cert_get(have);
			continue;
		}
		if (have)
			r.renewed++;
		if (have && reissue)
			r.reissued++;
		if (!have)
			r.minted++;
		changed = true;
		t->certs[t->n++] = fresh;
	}
	free(sorted);
	for (size_t i = 0; old && i < old->n; i++)
		if (!table_find(t, old->certs[i]->spiffe))
			r.dropped++;
	if (!changed && !r.dropped && old) {
		table_put(t); /* the same certificates: readers keep the table they have */
	} else {
		pthread_mutex_lock(&s->lock);
		s->cur = t;
		pthread_mutex_unlock(&s->lock);
		atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
		table_put(old); /* a certificate someone still holds lives on through its own reference */
	}
	if (res)
		*res = r;
	return 0;
}

uint64_t identity_store_generation(struct xm_identity_store *s)
{
	return atomic_load_explicit(&s->generation, memory_order_acquire);
}

int64_t identity_store_next_renewal(const struct xm_identity_store *s)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; s->cur && i < s->cur->n; i++)
		if (s->cur->certs[i]->renew_at < next)
			next = s->cur->certs[i]->renew_at;
	return next;
}

struct xm_cert *identity_store_get(struct xm_identity_store *s, const char *uri)
{
	struct cert_table *t = table_acquire(s);
	struct xm_cert *c = cert_get(table_find(t, uri));

	table_put(t);
	return c;
}

void identity_store_each(struct xm_identity_store *s, void (*fn)(void *ctx, const struct xm_cert *c), void *ctx)
{
	struct cert_table *t = table_acquire(s);

	for (size_t i = 0; t && i < t->n; i++)
		fn(ctx, t->certs[i]);
	table_put(t);
}

void identity_store_set_bundle(struct xm_identity_store *s, struct xm_trust_bundle *b)
{
	struct xm_trust_bundle *old;

	bundle_get(b);
	pthread_mutex_lock(&s->lock);
	old = s->bundle;
	s->bundle = b;
	pthread_mutex_unlock(&s->lock);
	bundle_put(old);
}

struct xm_trust_bundle *identity_store_bundle(struct xm_identity_store *s)
{
	struct xm_trust_bundle *b;

	pthread_mutex_lock(&s->lock);
	b = s->bundle ? bundle_get(s->bundle) : NULL;
	pthread_mutex_unlock(&s->lock);
	return b;
}

size_t identity_store_count(struct xm_identity_store *s)
{
	struct cert_table *t = table_acquire(s);
	size_t n = t ? t->n : 0;

	table_put(t);
	return n;
}
