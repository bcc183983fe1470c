/* SPDX-License-Identifier: Apache-2.0 */
/* xm_grow: room for what is needed, elements kept, and a failure that leaves the array as it was. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "core/grow.h"

Test(core_grow, grows_geometrically_and_keeps_elements)
{
	uint32_t *v = NULL;
	size_t cap = 0, n, i;

	for (n = 0; n < 1000; n++) {
		cr_assert_eq(XM_GROW(v, cap, n + 1), 0, "grow to %zu", n + 1);
		cr_assert_geq(cap, n + 1);
		v[n] = (uint32_t)(n * 7);
	}
	for (i = 0; i < n; i++)
		cr_assert_eq(v[i], i * 7, "element %zu changed to %u", i, v[i]);
	cr_assert_eq(cap, 1024, "capacity %zu: 8 doubled up to 1000 elements is 1024", cap);
	free(v);
}

Test(core_grow, enough_room_changes_nothing)
{
	uint32_t *v = NULL, *before;
	size_t cap = 0;

	cr_assert_eq(XM_GROW(v, cap, 3), 0);
	before = v;
	cr_assert_eq(XM_GROW(v, cap, 8), 0);
	cr_assert_eq(v, before, "reallocated although 8 elements fit");
	cr_assert_eq(cap, 8);
	free(v);
}

Test(core_grow, jumps_to_a_large_need)
{
	char *v = NULL;
	size_t cap = 0;

	cr_assert_eq(XM_GROW(v, cap, 100000), 0);
	cr_assert_geq(cap, 100000);
	v[99999] = 1;
	free(v);
}

Test(core_grow, failure_keeps_the_array)
{
	uint64_t *v = NULL, *before;
	size_t cap = 0;

	cr_assert_eq(XM_GROW(v, cap, 4), 0);
	v[3] = 42;
	before = v;
	/* SIZE_MAX / 4 elements of 8 bytes: more than the address space, refused before realloc. */
	cr_assert_eq(XM_GROW(v, cap, SIZE_MAX / 4), -ENOMEM);
	cr_assert_eq(v, before, "the array moved on failure");
	cr_assert_eq(cap, 8, "capacity changed to %zu on failure", cap);
	cr_assert_eq(v[3], 42);
	free(v);
}
