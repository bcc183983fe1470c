// SPDX-License-Identifier: Apache-2.0
/*
 * The API client's reconnect backoff (kube_backoff_next): the step doubles from 100 ms to the cap and stays
 * there; each wait is in the upper half of its step, and the waits of one step are spread (jitter), not equal.
 */
#include <criterion/criterion.h>
#include <stdbool.h>

#include "kube/client.h"

Test(kube_backoff, doubles_from_100ms_to_the_cap_with_each_wait_in_the_upper_half)
{
	static const unsigned steps[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000 };
	unsigned step = 0, seed = 1;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		unsigned ms = kube_backoff_next(&step, 5000, &seed);

		cr_expect_eq(step, steps[i], "step %zu: %u ms, expected %u", i, step, steps[i]);
		cr_expect(ms >= step / 2 && ms <= step, "wait %u ms outside [%u, %u]", ms, step / 2, step);
	}
	step = 0; /* a success resets it */
	kube_backoff_next(&step, 5000, &seed);
	cr_expect_eq(step, 100);
}

Test(kube_backoff, the_waits_are_spread_over_the_upper_half)
{
	unsigned seed = 42, lo = ~0u, hi = 0;
	unsigned half[2] = { 0 };

	for (int i = 0; i < 1000; i++) {
		unsigned step = 20000, ms = kube_backoff_next(&step, 30000, &seed); /* step 40000 → capped 30000 */

		cr_assert_eq(step, 30000);
		cr_assert(ms >= 15000 && ms <= 30000, "wait %u ms", ms);
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
		half[ms >= 22500]++;
	}
	/* Uniform over [15 s, 30 s]: both halves of the range get a fair share, the extremes are approached. */
	cr_expect(half[0] > 350 && half[1] > 350, "%u below 22.5 s, %u above", half[0], half[1]);
	cr_expect(lo < 15500 && hi > 29500, "range [%u, %u]", lo, hi);
}
