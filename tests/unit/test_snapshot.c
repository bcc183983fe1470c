// SPDX-License-Identifier: Apache-2.0
/* The compiled snapshot: what a config means for this node, its id indexes and its reference counting. */
#include <criterion/criterion.h>
#include <string.h>

#include "compile/snapshot.h"
#include "config/model.h"
#include "test_config.h"

static struct xm_snapshot *bookinfo(const char *node)
{
	const char *paths[] = { fixture("kubectl_bookinfo.yaml") };
	struct xm_compile_opts opts = { .node_name = node, .maglev_size = 251 };
	struct xm_config cfg = { 0 };
	struct xm_snapshot *s;
	int err;

	load_clean(paths, 1, &cfg);
	s = snapshot_build(&cfg, &opts, &err);
	cr_assert_not_null(s, "snapshot_build: %d", err);
	config_free(&cfg);
	return s;
}

/* What lbmap_assign_ids does after publishing, with made-up ids: 100 + service, 1000 + backend (shared). */
static void assign_fake_ids(struct xm_snapshot *s)
{
	for (size_t i = 0; i < s->lb.n_services; i++) {
		s->lb.services[i].svc_id = 100 + (uint32_t)i;
		for (size_t j = 0; j < s->lb.services[i].n_backends; j++)
			s->lb.services[i].backends[j].id = 1000 + (uint32_t)j;
	}
}

Test(snapshot, ids_resolve_to_services_and_backends)
{
	struct xm_snapshot *s = bookinfo("kind-worker");

	cr_assert_gt(s->lb.n_services, 1);
	cr_expect_null(snapshot_service(s, 100), "no index before snapshot_index");
	assign_fake_ids(s);
	cr_assert_eq(snapshot_index(s), 0);
	for (size_t i = 0; i < s->lb.n_services; i++) {
		cr_expect_eq(snapshot_service(s, 100 + (uint32_t)i), &s->lb.services[i]);
		cr_expect_eq(snapshot_service_by_key(s, &s->lb.services[i].key), &s->lb.services[i]);
	}
	cr_expect_null(snapshot_service(s, 0));
	cr_expect_null(snapshot_service(s, 100 + (uint32_t)s->lb.n_services));
	/* Backend 1000 is listed by every service: the first one answers. */
	cr_assert_gt(s->lb.services[0].n_backends, 0);
	cr_expect_eq(snapshot_backend(s, 1000), &s->lb.services[0].backends[0]);
	cr_expect_null(snapshot_backend(s, 999));
	snapshot_put(s);
}

Test(snapshot, local_addresses_follow_the_node)
{
	struct xm_snapshot *here = bookinfo("kind-worker"), *elsewhere = bookinfo("other-node"),
			   *nowhere = bookinfo(NULL);
	struct xm_local_ip_key k;

	cr_expect_gt(here->local.n, 0, "bookinfo's endpoints run on kind-worker");
	cr_expect_eq(elsewhere->local.n, 0);
	cr_expect_eq(nowhere->local.n, 0);
	for (size_t i = 1; i < here->local.n; i++)
		cr_expect_lt(memcmp(&here->local.keys[i - 1], &here->local.keys[i], sizeof(k)), 0, "sorted, unique");
	k = here->local.keys[0];
	cr_expect(local_addrs_has(&here->local, &k));
	cr_expect(!local_addrs_has(&elsewhere->local, &k));
	k.addr.bytes[15] ^= 0xff;
	k.family = XM_FAMILY_V6;
	cr_expect(!local_addrs_has(&here->local, &k));
	snapshot_put(here);
	snapshot_put(elsewhere);
	snapshot_put(nowhere);
}

Test(snapshot, a_reader_keeps_it_alive)
{
	struct xm_snapshot *s = bookinfo("kind-worker"), *reader = snapshot_get(s);
	size_t n = s->lb.n_services;

	cr_assert_eq(reader, s);
	snapshot_put(s); /* the control loop lets go; the reader still holds it (ASan would catch a free) */
	cr_expect_eq(reader->lb.n_services, n);
	cr_expect_eq(atomic_load(&reader->refs), 1);
	snapshot_put(reader);
	snapshot_put(NULL);
	cr_expect_null(snapshot_get(NULL));
}
