/* SPDX-License-Identifier: Apache-2.0 */
/* Maglev table builder: balance, disruption on removal, order independence, golden values, errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "lb/hash.h"
#include "lb/maglev.h"
#include "xmesh/lb.h"

#define SWEEP_M 131071 /* 2^17 - 1, prime, > 100 * 1000: one slot is < 1% of a backend's share */
#define MAX_N	1000

/* A pod-like backend 10.244.(i / 250).(i % 250 + 1):8080, serialized canonically: family, 16 bytes, port. */
static uint64_t backend_key(uint32_t i)
{
	uint8_t buf[19] = { 4 };

	buf[1] = 10;
	buf[2] = 244;
	buf[3] = (uint8_t)(i / 250);
	buf[4] = (uint8_t)(i % 250 + 1);
	buf[17] = 8080 >> 8;
	buf[18] = 8080 & 0xff;
	return maglev_key_of(buf, sizeof(buf));
}

static void make_keys(uint64_t *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		keys[i] = backend_key((uint32_t)i);
}

/* splitmix64: a reproducible PRNG for shuffles and random removal positions. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void shuffle(uint64_t *keys, size_t n, uint64_t seed)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(rng_next(&seed) % (i + 1));
		uint64_t t = keys[i];

		keys[i] = keys[j];
		keys[j] = t;
	}
}

static uint32_t *build_or_die(const uint64_t *keys, size_t n, uint32_t m)
{
	uint32_t *table = malloc(sizeof(*table) * m);
	int err;

	cr_assert_not_null(table);
	err = maglev_build_table(keys, n, table, m);
	cr_assert_eq(err, 0, "maglev_build_table(n=%zu, m=%u) = %d, want 0", n, m, err);
	return table;
}

/*
 * Checks that every slot holds a valid index, that shares differ by at most one slot (what round-robin
 * population guarantees), and that each is within tol (relative) of 1/n; returns the worst relative
 * deviation |count - m/n| / (m/n).
 */
static double check_balance(const uint32_t *table, size_t n, uint32_t m, double tol)
{
	static uint32_t count[MAX_N + 1];
	double ideal = (double)m / (double)n, worst = 0;
	uint32_t lo = UINT32_MAX, hi = 0;

	cr_assert_leq(n, MAX_N + 1);
	memset(count, 0, sizeof(count[0]) * n);
	for (uint32_t s = 0; s < m; s++) {
		cr_assert_lt(table[s], n, "m=%u n=%zu: slot %u holds index %u, out of range", m, n, s, table[s]);
		count[table[s]]++;
	}
	for (size_t i = 0; i < n; i++) {
		double dev = (count[i] > ideal ? count[i] - ideal : ideal - count[i]) / ideal;

		cr_assert_leq(dev, tol, "m=%u n=%zu: backend %zu has %u slots, ideal %.2f (%.3f%% off)", m, n, i,
			      count[i], ideal, 100 * dev);
		if (dev > worst)
			worst = dev;
		lo = count[i] < lo ? count[i] : lo;
		hi = count[i] > hi ? count[i] : hi;
	}
	cr_assert_leq(hi - lo, 1, "m=%u n=%zu: shares range from %u to %u slots", m, n, lo, hi);
	return worst;
}

static double balance_sweep(size_t lo, size_t hi, uint32_t m)
{
	static uint64_t keys[MAX_N];
	uint32_t *table = malloc(sizeof(*table) * m);
	double worst = 0;

	cr_assert_not_null(table);
	make_keys(keys, hi);
	for (size_t n = lo; n <= hi; n++) {
		int err = maglev_build_table(keys, n, table, m);
		double dev;

		cr_assert_eq(err, 0, "maglev_build_table(n=%zu, m=%u) = %d", n, m, err);
		dev = check_balance(table, n, m, 0.01);
		if (dev > worst)
			worst = dev;
	}
	free(table);
	cr_log_info("balance m=%u n=%zu..%zu: worst share %.3f%% off 1/n", m, lo, hi, 100 * worst);
	return worst;
}

/* Split in four so that criterion's workers run the sweep in parallel. */
Test(maglev, balance_sweep_3_to_400)
{
	balance_sweep(3, 400, SWEEP_M);
}

Test(maglev, balance_sweep_401_to_650)
{
	balance_sweep(401, 650, SWEEP_M);
}

Test(maglev, balance_sweep_651_to_850)
{
	balance_sweep(651, 850, SWEEP_M);
}

Test(maglev, balance_sweep_851_to_1000)
{
	balance_sweep(851, 1000, SWEEP_M);
}

Test(maglev, balance_default_size)
{
	cr_assert(maglev_is_prime(XM_MAGLEV_DEFAULT_SIZE));
	balance_sweep(1, 100, XM_MAGLEV_DEFAULT_SIZE);
}

Test(maglev, balance_max_size)
{
	cr_assert(maglev_is_prime(XM_MAGLEV_MAX_SIZE));
	balance_sweep(1000, 1000, XM_MAGLEV_MAX_SIZE);
}

/*
 * Removes keys[victim] and counts the slots whose backend key changed, the victim's own included;
 * asserts that count <= (1/n + slack) * m and returns count / m - 1/n (the excess over the minimum).
 */
static double check_removal(const uint64_t *keys, size_t n, size_t victim, uint32_t m, double slack)
{
	uint64_t *rest = malloc(sizeof(*rest) * n);
	uint32_t *before, *after, changed = 0;
	double bound = (1.0 / (double)n + slack) * m;

	cr_assert_not_null(rest);
	memcpy(rest, keys, sizeof(*rest) * n);
	memmove(&rest[victim], &rest[victim + 1], sizeof(*rest) * (n - victim - 1));
	before = build_or_die(keys, n, m);
	after = build_or_die(rest, n - 1, m);
	for (uint32_t s = 0; s < m; s++) {
		if (keys[before[s]] != rest[after[s]])
			changed++;
	}
	cr_assert_leq(changed, bound, "m=%u n=%zu, removing backend %zu: %u slots moved (%.3f%%), bound %.0f", m, n,
		      victim, changed, 100.0 * changed / m, bound);
	free(before);
	free(after);
	free(rest);
	return (double)changed / m - 1.0 / (double)n;
}

static void disruption_sweep(const size_t *ns, size_t count, uint32_t m, double slack)
{
	static uint64_t keys[MAX_N];
	uint64_t seed = 42;
	double worst = 0;

	make_keys(keys, MAX_N);
	for (size_t k = 0; k < count; k++) {
		size_t n = ns[k];
		size_t victims[] = { 0, 1, n / 2, n - 1, (size_t)(rng_next(&seed) % n) };

		for (size_t v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
			double excess = check_removal(keys, n, victims[v], m, slack);

			if (excess > worst)
				worst = excess;
		}
	}
	cr_log_info("disruption m=%u: worst %.3f%% of slots moved beyond the minimal 1/n", m, 100 * worst);
}

Test(maglev, disruption_on_removal)
{
	static const size_t ns[] = { 3, 4, 5, 7, 10, 16, 31, 50, 100, 128, 257, 500, 750, 999, 1000 };

	disruption_sweep(ns, sizeof(ns) / sizeof(ns[0]), SWEEP_M, 0.01);
}

/* The default size (65537, Envoy's) keeps the 1/N + 1% bound for the service sizes it is meant for. */
Test(maglev, disruption_on_removal_default_size)
{
	static const size_t ns[] = { 3, 4, 5, 10, 25, 50, 97, 100 };

	disruption_sweep(ns, sizeof(ns) / sizeof(ns[0]), XM_MAGLEV_DEFAULT_SIZE, 0.01);
}

/* The slot → key mapping must not depend on the order the caller lists backends in. */
Test(maglev, order_independent)
{
	static const size_t ns[] = { 3, 10, 100, 1000 };
	static uint64_t keys[MAX_N], shuffled[MAX_N];
	const uint32_t m = XM_MAGLEV_DEFAULT_SIZE;

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		size_t n = ns[k];
		uint32_t *ref, *other;

		make_keys(keys, n);
		ref = build_or_die(keys, n, m);
		for (uint64_t seed = 0; seed < 4; seed++) {
			memcpy(shuffled, keys, sizeof(keys[0]) * n);
			if (seed == 0) {
				for (size_t i = 0; i < n; i++) /* reversed */
					shuffled[i] = keys[n - 1 - i];
			} else {
				shuffle(shuffled, n, seed);
			}
			other = build_or_die(shuffled, n, m);
			for (uint32_t s = 0; s < m; s++) {
				cr_assert_eq(keys[ref[s]], shuffled[other[s]],
					     "n=%zu order %" PRIu64 ": slot %u maps to key %016" PRIx64
					     ", in input order to %016" PRIx64,
					     n, seed, s, shuffled[other[s]], keys[ref[s]]);
			}
			free(other);
		}
		free(ref);
	}
}

/* A key listed twice is one backend of double weight, and the mapping stays order-independent. */
Test(maglev, duplicate_keys)
{
	uint64_t a[] = { 11, 22, 11, 33 }, b[] = { 33, 11, 22, 11 };
	const uint32_t m = 1009;
	uint32_t *ta = build_or_die(a, 4, m), *tb = build_or_die(b, 4, m);
	uint32_t dup = 0;

	for (uint32_t s = 0; s < m; s++) {
		cr_assert_eq(a[ta[s]], b[tb[s]], "slot %u: %" PRIu64 " vs %" PRIu64, s, a[ta[s]], b[tb[s]]);
		dup += a[ta[s]] == 11;
	}
	cr_assert(dup == 504 || dup == 505, "key listed twice holds %u of %u slots, want ~m/2", dup, m);
	free(ta);
	free(tb);
}

/* FNV-1a over the slot → key mapping, to pin the whole output in a golden value. */
static uint64_t table_digest(const uint64_t *keys, const uint32_t *table, uint32_t m)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (uint32_t s = 0; s < m; s++) {
		uint64_t k = keys[table[s]];

		for (int b = 0; b < 8; b++) {
			h ^= (uint8_t)(k >> (8 * b));
			h *= 0x100000001b3ULL;
		}
	}
	return h;
}

/*
 * Every node must build the same table for the same backends, across versions and architectures: these
 * values pin the hash and the population order. If one changes, existing flows get rehashed on upgrade.
 */
Test(maglev, golden_values)
{
	uint64_t empty = maglev_key_of("", 0), text = maglev_key_of("10.0.0.1:8080", 13);
	static uint64_t keys[100];
	uint32_t *table;
	uint64_t digest;

	cr_assert_eq(empty, 0x206b14b48ff92230ULL, "key_of(\"\") = %016" PRIx64, empty);
	cr_assert_eq(text, 0x4e37c45f0f99af77ULL, "key_of(\"10.0.0.1:8080\") = %016" PRIx64, text);
	cr_assert_eq(backend_key(0), 0x420b600b5d297943ULL, "backend_key(0) = %016" PRIx64, backend_key(0));

	make_keys(keys, 100);
	table = build_or_die(keys, 100, 16381);
	digest = table_digest(keys, table, 16381);
	cr_assert_eq(digest, 0xf6fb87c69060869eULL, "digest(n=100, m=16381) = %016" PRIx64, digest);
	free(table);
}

Test(maglev, deterministic)
{
	static uint64_t keys[500];
	uint32_t *a, *b;

	make_keys(keys, 500);
	a = build_or_die(keys, 500, SWEEP_M);
	b = build_or_die(keys, 500, SWEEP_M);
	cr_assert_arr_eq(a, b, sizeof(*a) * SWEEP_M, "two builds of the same input differ");
	free(a);
	free(b);
}

Test(maglev, hash_differs_per_byte)
{
	uint8_t buf[19] = { 0 };
	uint64_t base = xm_hash64(buf, sizeof(buf), 0);

	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] = 1;
		cr_assert_neq(xm_hash64(buf, sizeof(buf), 0), base, "byte %zu is not hashed", i);
		buf[i] = 0;
	}
	cr_assert_neq(xm_hash64(buf, 2, 0), xm_hash64(buf, 3, 0), "length is not part of the hash");
	cr_assert_neq(xm_hash64(buf, 3, 1), xm_hash64(buf, 3, 2), "seed is not part of the hash");
}

Test(maglev, smallest_tables)
{
	uint64_t keys[] = { 7, 8, 9, 10 };
	uint32_t table[13];

	cr_assert_eq(maglev_build_table(keys, 1, table, 2), 0);
	cr_assert(table[0] == 0 && table[1] == 0, "n=1 m=2: table %u %u", table[0], table[1]);
	cr_assert_eq(maglev_build_table(keys, 2, table, 3), 0);
	check_balance(table, 2, 3, 1.0);
	cr_assert_eq(maglev_build_table(keys, 4, table, 5), 0);
	check_balance(table, 4, 5, 1.0);
	cr_assert_eq(maglev_build_table(keys, 4, table, 13), 0);
	check_balance(table, 4, 13, 0.25);
}

Test(maglev, is_prime)
{
	static const uint32_t
	    primes[] = { 2,	3,	5,	 7,	      13,	  65521,
			 16381, 131071, 1048573, 2147483647U, 4294967291U /* the largest 32-bit prime */ };
	static const uint32_t composites[] = { 0,
					       1,
					       4,
					       9,
					       25,
					       49,
					       561 /* Carmichael */,
					       16383,
					       65536,
					       131073,
					       4293001441U /* 65521^2 */,
					       4294967295U,
					       4294967293U };

	for (size_t i = 0; i < sizeof(primes) / sizeof(primes[0]); i++)
		cr_assert(maglev_is_prime(primes[i]), "%u is prime", primes[i]);
	for (size_t i = 0; i < sizeof(composites) / sizeof(composites[0]); i++)
		cr_assert_not(maglev_is_prime(composites[i]), "%u is not prime", composites[i]);
}

/* Against a sieve of Eratosthenes over the first 200k integers. */
Test(maglev, is_prime_matches_sieve)
{
	enum {
		LIMIT = 200000
	};
	static bool composite[LIMIT];

	composite[0] = composite[1] = true;
	for (uint32_t i = 2; (uint64_t)i * i < LIMIT; i++) {
		if (!composite[i]) {
			for (uint32_t j = i * i; j < LIMIT; j += i)
				composite[j] = true;
		}
	}
	for (uint32_t i = 0; i < LIMIT; i++)
		cr_assert_eq(maglev_is_prime(i), !composite[i], "maglev_is_prime(%u) = %d", i, maglev_is_prime(i));
}

Test(maglev, errors)
{
	uint64_t keys[] = { 1, 2, 3, 4, 5 };
	uint32_t table[16];

	cr_assert_eq(maglev_build_table(keys, 3, table, 16), -EINVAL, "m=16 is not prime");
	cr_assert_eq(maglev_build_table(keys, 3, table, 15), -EINVAL, "m=15 is not prime");
	cr_assert_eq(maglev_build_table(keys, 1, table, 1), -EINVAL, "m=1 is not prime");
	cr_assert_eq(maglev_build_table(keys, 1, table, 0), -EINVAL, "m=0 is not prime");
	cr_assert_eq(maglev_build_table(keys, 0, table, 13), -EINVAL, "n=0");
	cr_assert_eq(maglev_build_table(keys, 5, table, 5), -EINVAL, "n == m");
	cr_assert_eq(maglev_build_table(keys, 5, table, 3), -EINVAL, "n > m");
	cr_assert_eq(maglev_build_table(keys, 2, table, 2), -EINVAL, "n == m == 2");
	cr_assert_eq(maglev_build_table(NULL, 3, table, 13), -EINVAL, "NULL keys");
	cr_assert_eq(maglev_build_table(keys, 3, NULL, 13), -EINVAL, "NULL table");
	cr_assert_eq(maglev_build_table(keys, 5, table, 7), 0, "n=5 m=7 is valid");
}
