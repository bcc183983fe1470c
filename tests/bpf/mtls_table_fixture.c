// SPDX-License-Identifier: Apache-2.0
#include "mtls_table_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

struct xm_mtls_entry mtx_entry(const char *ip, uint16_t port, uint8_t mode, uint8_t flags)
{
	struct xm_mtls_entry e;

	memset(&e, 0, sizeof(e));
	e.key.family = strchr(ip, ':') ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(e.key.family == XM_FAMILY_V6 ? AF_INET6 : AF_INET, ip, e.key.addr.bytes), 1);
	e.key.port = port;
	e.val.mode = mode;
	e.val.flags = flags;
	return e;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_mtls_key));
}

struct xm_mtls_table mtx_table(struct xm_mtls_entry *items, size_t n)
{
	qsort(items, n, sizeof(*items), key_cmp);
	return (struct xm_mtls_table){ .items = items, .n = n };
}

void mtx_assert_map_is(int fd, const struct xm_mtls_table *t)
{
	struct xm_mtls_key k, *prev = NULL, next;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		const struct xm_mtls_entry *want = mtls_table_find(t, &next);
		struct xm_mtls_policy v;

		k = next;
		prev = &k;
		n++;
		cr_assert_not_null(want, "the map holds a key (port %u) the table does not", k.port);
		cr_assert_eq(bpf_map_lookup_elem(fd, &k, &v), 0);
		cr_assert(!memcmp(&v, &want->val, sizeof(v)), "port %u: mode %u flags %u, want %u %u", k.port, v.mode,
			  v.flags, want->val.mode, want->val.flags);
	}
	cr_assert_eq(n, t->n, "the map holds %zu entries, want %zu", n, t->n);
}
