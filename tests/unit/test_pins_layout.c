// SPDX-License-Identifier: Apache-2.0
/*
 * pins_btf_layout_equal: how an upgrade tells a pinned map of an earlier version from this version's when
 * their sizes agree (agent/datapath/pins.c). Types are built with libbpf's BTF writer.
 */
#include <bpf/btf.h>
#include <criterion/criterion.h>
#include <stdbool.h>

#include "datapath/pins.h"

/* struct v { u32 <first>; u32 <second>; } (8 bytes) in a fresh BTF; *id gets the struct's type id. */
static struct btf *two_u32(const char *first, const char *second, int second_bits, int *id)
{
	struct btf *b = btf__new_empty();
	int u32, u64;

	cr_assert_not_null(b);
	u32 = btf__add_int(b, "unsigned int", 4, 0);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	*id = btf__add_struct(b, "v", second_bits == 64 ? 12 : 8);
	cr_assert_geq(*id, 0);
	cr_assert_eq(btf__add_field(b, first, u32, 0, 0), 0);
	cr_assert_eq(btf__add_field(b, second, second_bits == 64 ? u64 : u32, 32, 0), 0);
	return b;
}

/* Struct (a_first, a_second) against (b_first, b_second of b_bits): the same layout? */
static bool same_layout(const char *a_first, const char *a_second, const char *b_first, const char *b_second,
			int b_bits)
{
	int ia, ib;
	struct btf *a = two_u32(a_first, a_second, 32, &ia), *b = two_u32(b_first, b_second, b_bits, &ib);
	bool eq = pins_btf_layout_equal(a, (unsigned)ia, b, (unsigned)ib);

	btf__free(a);
	btf__free(b);
	return eq;
}

Test(pins_layout, same_struct_is_equal)
{
	cr_assert(same_layout("backend_id", "svc_id", "backend_id", "svc_id", 32));
}

Test(pins_layout, swapped_fields_of_the_same_size_differ)
{
	cr_assert_not(same_layout("backend_id", "svc_id", "svc_id", "backend_id", 32));
}

Test(pins_layout, a_wider_field_differs)
{
	cr_assert_not(same_layout("backend_id", "svc_id", "backend_id", "svc_id", 64));
}
