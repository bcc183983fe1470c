// SPDX-License-Identifier: Apache-2.0
#include "l7/request_id.h"

#include <sys/random.h>
#include <time.h>

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* splitmix64: spreads a weak fallback seed over the four words. */
static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void l7_rng_seed(struct l7_rng *r)
{
	if (getrandom(r->s, sizeof(r->s), 0) != (ssize_t)sizeof(r->s) || !(r->s[0] | r->s[1] | r->s[2] | r->s[3])) {
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec + (uint64_t)(uintptr_t)r;
		for (int i = 0; i < 4; i++)
			r->s[i] = splitmix(&x);
	}
}

uint64_t l7_rng_next(struct l7_rng *r)
{
	uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t l7_rng_below(struct l7_rng *r, uint32_t n)
{
	/* Lemire's multiply-shift: the bias is below 2^-32 for the small n used here. */
	return (uint32_t)(((l7_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

void l7_uuid4(struct l7_rng *r, char out[37])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	uint64_t a = l7_rng_next(r), c = l7_rng_next(r);
	int i, o = 0;

	for (i = 0; i < 8; i++) {
		b[i] = (uint8_t)(a >> (8 * i));
		b[8 + i] = (uint8_t)(c >> (8 * i));
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}
