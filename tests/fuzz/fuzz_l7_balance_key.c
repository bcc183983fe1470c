// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: consistentHash keys read from a client's request (Cookie headers, query string, a hash
 * header) and the picks made on them. Checks, beyond memory safety: the index is in range, a request that
 * carries its key lands on the same endpoint on any worker, and an issued Set-Cookie is one clean line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l7/balance.h"
#include "l7/balance_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_EP 5

/* The next part of the input up to a NUL separator, as an exact-size heap copy (ASan sees overreads). */
static struct h1_str take(const uint8_t **p, const uint8_t *end, char **owned)
{
	const uint8_t *sep = memchr(*p, 0, (size_t)(end - *p));
	size_t len = (size_t)((sep ? sep : end) - *p);

	*owned = malloc(len ? len : 1);
	if (*owned)
		memcpy(*owned, *p, len);
	*p = sep ? sep + 1 : end;
	return (struct h1_str){ .p = *owned, .len = *owned ? (uint32_t)len : 0 };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum xm_dr_hash_key keys[] = { XM_DR_HASH_HTTP_HEADER, XM_DR_HASH_HTTP_COOKIE,
						    XM_DR_HASH_SOURCE_IP, XM_DR_HASH_QUERY_PARAMETER };
	static struct xm_lb_service svc;
	static struct xm_lb_backend backends[N_EP];
	static const struct xm_lb_backend *eps[N_EP];
	static struct l7_cluster c;
	static struct l7_balancer *b1, *b2;
	const uint8_t *p = data + 1, *end = data + size;
	struct h1_header headers[3];
	struct l7_request_view rq;
	struct l7_pick one, two;
	char *cookie1, *cookie2, *query, *value;
	union xm_addr client = { .bytes = { 10, 0, 0, 1 } };
	uint64_t hash;
	bool keyed;

	if (!size)
		return 0;
	if (!b1) {
		for (int i = 0; i < N_EP; i++) {
			backends[i].family = XM_FAMILY_V4;
			backends[i].addr.bytes[0] = 10;
			backends[i].addr.bytes[3] = (uint8_t)(i + 1);
			backends[i].port = 80;
			backends[i].id = (uint32_t)i + 1;
			eps[i] = &backends[i];
		}
		c.svc = &svc;
		c.endpoints = eps;
		c.n_endpoints = N_EP;
		c.policy.lb.simple = XM_DR_LB_CONSISTENT_HASH;
		c.policy.lb.maglev_table_size = 251;
		strcpy(c.policy.lb.cookie_path, "/");
		b1 = l7_balancer_new(1, NULL, NULL);
		b2 = l7_balancer_new(2, NULL, NULL);
		if (!b1 || !b2)
			abort();
	}
	c.policy.lb.hash_key = keys[data[0] & 3];
	c.policy.lb.cookie_ttl_set = data[0] & 4;
	c.policy.lb.cookie_ttl_ms = (data[0] & 8) ? 86400000 : 0;
	strcpy(c.policy.lb.hash_param, (data[0] & 16) ? "user" : "session");

	memset(&rq, 0, sizeof(rq));
	headers[0].name = (struct h1_str){ .p = "Cookie", .len = 6 };
	headers[0].value = take(&p, end, &cookie1);
	headers[1].name = (struct h1_str){ .p = "cookie", .len = 6 };
	headers[1].value = take(&p, end, &cookie2);
	rq.query = take(&p, end, &query);
	headers[2].name =
	    (struct h1_str){ .p = c.policy.lb.hash_param, .len = (uint32_t)strlen(c.policy.lb.hash_param) };
	headers[2].value = take(&p, end, &value);
	rq.headers = headers;
	rq.n_headers = 3;

	keyed = l7_balance_key_hash(&c.policy.lb, &rq, &client, XM_FAMILY_V4, &hash);
	l7_balance_pick(b1, &c, &rq, &client, XM_FAMILY_V4, &one);
	l7_balance_pick(b2, &c, &rq, &client, XM_FAMILY_V4, &two);
	if (one.index < 0 || one.index >= N_EP || two.index < 0 || two.index >= N_EP)
		abort();
	if (keyed && (one.index != two.index || one.set_cookie[0] || two.set_cookie[0]))
		abort();
	if (one.set_cookie[0]) {
		if (keyed || c.policy.lb.hash_key != XM_DR_HASH_HTTP_COOKIE || !c.policy.lb.cookie_ttl_set)
			abort();
		for (const char *s = one.set_cookie; *s; s++) {
			if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
				abort();
		}
	}
	free(cookie1);
	free(cookie2);
	free(query);
	free(value);
	return 0;
}
