/* SPDX-License-Identifier: Apache-2.0 */
/*
 * State that every proxy worker shares and that outlives one config snapshot: a destination's circuit-breaker
 * counts (Envoy keeps them per cluster, for all workers) and a rate limit's token bucket. A route table
 * (immutable, one per snapshot) points at one object per key; when a new table is applied, each of its
 * objects is swapped for the registry's object of the same key, so that counts and tokens carry over an
 * apply that did not change them and requests still in flight on the old snapshot decrement the same counts.
 *
 * Threads: l7_shared_new/put anywhere; the registry only on the control thread (l7_proxy_apply).
 */
#ifndef XMESH_L7_SHARED_STATE_H
#define XMESH_L7_SHARED_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define L7_SHARED_SLOTS 8

struct l7_shared {
	atomic_uint refs;		 /* tables pointing at it */
	atomic_llong v[L7_SHARED_SLOTS]; /* the user's counters (meaning by key prefix, e.g. l7_cluster_load) */
	bool registered;		 /* a registry indexes it: only the registry frees it */
	struct l7_shared *next;		 /* registry chain */
	char key[];			 /* "cluster|outbound|9080|v1|reviews.default.svc.cluster.local" */
};

/* A fresh object, all slots 0, refs 1, in no registry. NULL when out of memory. */
struct l7_shared *l7_shared_new(const char *key);
/* Drops one reference (NULL is fine); an unregistered object is freed with its last one. */
void l7_shared_put(struct l7_shared *s);

struct l7_shared_registry;

struct l7_shared_registry *l7_shared_registry_new(void);
/*
 * *slot (a table's object) becomes the registered object with the same key, whose state carries over, one
 * reference taken and the fresh one dropped; or *slot is registered itself. NULL *slot is left alone.
 */
void l7_shared_adopt(struct l7_shared_registry *r, struct l7_shared **slot);
/* Frees registered objects that no table points at any more. */
void l7_shared_sweep(struct l7_shared_registry *r);
/*
 * Frees the registry. Objects still pointed at become unregistered (freed with their last reference). Only
 * when no other thread can drop a reference (the workers are stopped).
 */
void l7_shared_registry_free(struct l7_shared_registry *r);
size_t l7_shared_registered(const struct l7_shared_registry *r);

#endif
