/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x-request-id values: UUIDv4 strings from a per-worker xoshiro256** generator seeded by getrandom(), so a
 * request never pays a system call for its id. Also the worker's uniform random numbers (weights, mirror).
 */
#ifndef XMESH_L7_REQUEST_ID_H
#define XMESH_L7_REQUEST_ID_H

#include <stdint.h>

struct l7_rng {
	uint64_t s[4];
};

/* Seeds from getrandom(); falls back to the clock and the address of r if the kernel refuses. */
void l7_rng_seed(struct l7_rng *r);
uint64_t l7_rng_next(struct l7_rng *r);
/* Uniform in [0, n), n > 0. */
uint32_t l7_rng_below(struct l7_rng *r, uint32_t n);
/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (RFC 9562 version 4, variant 10) with its NUL: 37 bytes. */
void l7_uuid4(struct l7_rng *r, char out[37]);

#endif
