// SPDX-License-Identifier: Apache-2.0
/* Worker-shared state across snapshots: same key → same object and counts; unused objects swept. */
#include <criterion/criterion.h>

#include "l7/shared_state.h"

Test(l7_shared_state, carries_over_by_key_and_sweeps_unused)
{
	struct l7_shared_registry *r = l7_shared_registry_new();
	struct l7_shared *a = l7_shared_new("cluster|a"), *b = l7_shared_new("cluster|b");
	struct l7_shared *a2 = l7_shared_new("cluster|a"), *first_a;

	cr_assert(r && a && b && a2);
	l7_shared_adopt(r, &a);
	l7_shared_adopt(r, &b);
	first_a = a;
	cr_assert_eq(l7_shared_registered(r), 2);
	atomic_store(&a->v[0], 7);
	/* The next table's "a" becomes the registered one, with its count. */
	l7_shared_adopt(r, &a2);
	cr_assert_eq(a2, first_a);
	cr_assert_eq(atomic_load(&a2->v[0]), 7);
	cr_assert_eq(atomic_load(&a2->refs), 2);
	/* The old table goes away: "b" is referenced by nothing and swept, "a" stays. */
	l7_shared_put(a);
	l7_shared_put(b);
	l7_shared_sweep(r);
	cr_assert_eq(l7_shared_registered(r), 1);
	cr_assert_eq(atomic_load(&a2->v[0]), 7);
	/* The registry goes first; the object outlives it until its last reference (ASan checks the free). */
	l7_shared_registry_free(r);
	l7_shared_put(a2);
}

Test(l7_shared_state, unregistered_object_is_freed_with_its_last_reference)
{
	struct l7_shared *s = l7_shared_new("bucket|x");

	cr_assert(s);
	cr_assert_str_eq(s->key, "bucket|x");
	l7_shared_put(s);
	l7_shared_put(NULL);
}
