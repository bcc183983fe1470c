/* SPDX-License-Identifier: Apache-2.0 */
/* Per-request L7 balancing: each DestinationRule algorithm's spread, hash stickiness and disruption, cookies,
 * ejected endpoints, panic routing, active request counts, and ns per pick. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "l7/balance.h"

#define MAX_EP	 64
#define SVC_ID	 7
#define ID_BASE	 100 /* endpoint i has backend id ID_BASE + i */
#define NO_INDEX (-1)

struct fixture {
	struct xm_lb_service svc;
	struct xm_lb_backend backends[MAX_EP];
	const struct xm_lb_backend *eps[MAX_EP];
	struct l7_cluster c;
};

static bool ejected_ids[XM_MAX_BACKENDS];
static unsigned long ejected_calls;

static bool test_ejected(void *ctx, uint32_t svc_id, uint32_t backend_id)
{
	cr_assert_eq(ctx, &ejected_calls, "the callback gets the context it was registered with");
	cr_assert_eq(svc_id, SVC_ID);
	ejected_calls++;
	return ejected_ids[backend_id];
}

static void reset_ejections(void)
{
	memset(ejected_ids, 0, sizeof(ejected_ids));
	ejected_calls = 0;
}

TestSuite(l7_balance, .init = reset_ejections);

/* n endpoints 10.244.0.(i+1):8080, ids ID_BASE + i, outlier detection on. */
static void make_cluster(struct fixture *f, size_t n, enum xm_dr_lb algo)
{
	cr_assert_leq(n, MAX_EP);
	memset(f, 0, sizeof(*f));
	snprintf(f->svc.ns, sizeof(f->svc.ns), "default");
	snprintf(f->svc.name, sizeof(f->svc.name), "reviews");
	f->svc.svc_id = SVC_ID;
	f->svc.outlier_on = true;
	for (size_t i = 0; i < n; i++) {
		struct xm_lb_backend *b = &f->backends[i];

		b->family = XM_FAMILY_V4;
		b->addr.bytes[0] = 10;
		b->addr.bytes[1] = 244;
		b->addr.bytes[2] = (uint8_t)(i / 250);
		b->addr.bytes[3] = (uint8_t)(i % 250 + 1);
		b->port = 8080;
		b->ready = true;
		b->id = ID_BASE + (uint32_t)i;
		f->eps[i] = b;
	}
	f->svc.backends = f->backends;
	f->svc.n_backends = f->svc.n_ready = n;
	snprintf(f->c.name, sizeof(f->c.name), "outbound|9080||reviews.default.svc.cluster.local");
	f->c.svc = &f->svc;
	f->c.endpoints = f->eps;
	f->c.n_endpoints = n;
	f->c.policy.lb.simple = algo;
}

static void make_hash_cluster(struct fixture *f, size_t n, enum xm_dr_hash_key key, const char *param)
{
	make_cluster(f, n, XM_DR_LB_CONSISTENT_HASH);
	f->c.policy.lb.hash_key = key;
	snprintf(f->c.policy.lb.hash_param, sizeof(f->c.policy.lb.hash_param), "%s", param);
}

static struct l7_balancer *new_balancer(uint64_t seed)
{
	struct l7_balancer *b = l7_balancer_new(seed, test_ejected, &ejected_calls);

	cr_assert_not_null(b);
	return b;
}

static struct h1_str str(const char *s)
{
	return (struct h1_str){ .p = s, .len = (uint32_t)strlen(s) };
}

/* A request with up to 4 headers given as "name", "value" pairs (NULL-terminated) and a query string. */
struct request {
	struct h1_header headers[4];
	struct l7_request_view view;
};

static const struct l7_request_view *request(struct request *r, const char *query, const char *name1,
					     const char *value1, const char *name2, const char *value2)
{
	memset(r, 0, sizeof(*r));
	r->view.method = str("GET");
	r->view.path = str("/");
	r->view.query = str(query ? query : "");
	r->view.host = str("reviews");
	r->view.port = 9080;
	if (name1) {
		r->headers[r->view.n_headers].name = str(name1);
		r->headers[r->view.n_headers++].value = str(value1);
	}
	if (name2) {
		r->headers[r->view.n_headers].name = str(name2);
		r->headers[r->view.n_headers++].value = str(value2);
	}
	r->view.headers = r->headers;
	return &r->view;
}

static int pick_rq(struct l7_balancer *b, const struct l7_cluster *c, const struct l7_request_view *rq,
		   struct l7_pick *out)
{
	union xm_addr client = { .bytes = { 10, 244, 9, 9 } };

	l7_balance_pick(b, c, rq, &client, XM_FAMILY_V4, out);
	cr_assert(out->index >= NO_INDEX && out->index < (int)c->n_endpoints, "index %d of %zu", out->index,
		  c->n_endpoints);
	return out->index;
}

static int pick(struct l7_balancer *b, const struct l7_cluster *c)
{
	struct request r;
	struct l7_pick out;

	return pick_rq(b, c, request(&r, NULL, NULL, NULL, NULL, NULL), &out);
}

static int pick_header(struct l7_balancer *b, const struct l7_cluster *c, const char *name, const char *value)
{
	struct request r;
	struct l7_pick out;
	int i = pick_rq(b, c, request(&r, NULL, name, value, NULL, NULL), &out);

	cr_expect_str_eq(out.set_cookie, "", "only a hash cookie is ever issued");
	return i;
}

static void eject(const struct fixture *f, size_t i)
{
	ejected_ids[f->eps[i]->id] = true;
}

static void expect_share(const unsigned *counts, size_t n, double want, double tolerance, unsigned total,
			 const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double share = (double)counts[i] / total;

		cr_expect(share >= want - tolerance && share <= want + tolerance,
			  "%s: endpoint %zu got %.3f of the picks, want %.3f ± %.3f", what, i, share, want, tolerance);
	}
}

Test(l7_balance, round_robin_visits_each_endpoint_equally_in_turn)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(1);
	unsigned counts[MAX_EP] = { 0 };
	int prev = -1;

	make_cluster(&f, 5, XM_DR_LB_ROUND_ROBIN);
	for (int k = 0; k < 100 * 5; k++) {
		int i = pick(b, &f.c);

		cr_assert_geq(i, 0);
		if (prev >= 0)
			cr_assert_eq(i, (prev + 1) % 5, "pick %d: %d after %d", k, i, prev);
		prev = i;
		counts[i]++;
	}
	for (size_t i = 0; i < 5; i++)
		cr_expect_eq(counts[i], 100, "endpoint %zu: %u picks of 500", i, counts[i]);
	l7_balancer_free(b);
}

Test(l7_balance, round_robin_skips_ejected_and_keeps_turns_even)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(2);
	unsigned counts[MAX_EP] = { 0 };

	make_cluster(&f, 5, XM_DR_LB_ROUND_ROBIN);
	eject(&f, 1);
	eject(&f, 2);
	for (int k = 0; k < 100 * 3; k++)
		counts[pick(b, &f.c)]++;
	cr_expect_eq(counts[1], 0);
	cr_expect_eq(counts[2], 0);
	cr_expect_eq(counts[0], 100);
	cr_expect_eq(counts[3], 100);
	cr_expect_eq(counts[4], 100);
	l7_balancer_free(b);
}

Test(l7_balance, round_robin_cursor_is_per_cluster)
{
	static struct fixture f1, f2;
	struct l7_balancer *b = new_balancer(3);
	int prev1 = pick(b, (make_cluster(&f1, 3, XM_DR_LB_ROUND_ROBIN), &f1.c));
	int prev2 = pick(b, (make_cluster(&f2, 4, XM_DR_LB_ROUND_ROBIN), &f2.c));

	for (int k = 0; k < 50; k++) {
		int i1 = pick(b, &f1.c), i2 = pick(b, &f2.c);

		cr_assert_eq(i1, (prev1 + 1) % 3);
		cr_assert_eq(i2, (prev2 + 1) % 4);
		prev1 = i1;
		prev2 = i2;
	}
	l7_balancer_free(b);
}

Test(l7_balance, random_spreads_evenly_and_is_reproducible_from_the_seed)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(42), *same = new_balancer(42), *other = new_balancer(43);
	unsigned counts[MAX_EP] = { 0 }, differ = 0;
	const unsigned total = 40000;

	make_cluster(&f, 4, XM_DR_LB_RANDOM);
	for (unsigned k = 0; k < total; k++) {
		int i = pick(b, &f.c);

		cr_assert_eq(i, pick(same, &f.c), "same seed, same sequence");
		differ += i != pick(other, &f.c);
		counts[i]++;
	}
	expect_share(counts, 4, 0.25, 0.02, total, "RANDOM");
	cr_expect_gt(differ, total / 2, "another seed gives another sequence (%u of %u differ)", differ, total);
	l7_balancer_free(b);
	l7_balancer_free(same);
	l7_balancer_free(other);
}

Test(l7_balance, random_skips_ejected)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(5);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 30000;

	make_cluster(&f, 4, XM_DR_LB_RANDOM);
	eject(&f, 2);
	for (unsigned k = 0; k < total; k++)
		counts[pick(b, &f.c)]++;
	cr_expect_eq(counts[2], 0);
	counts[2] = counts[3];
	expect_share(counts, 3, 1.0 / 3, 0.02, total, "RANDOM, one of 4 ejected");
	l7_balancer_free(b);
}

Test(l7_balance, least_request_prefers_the_less_loaded)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(6);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 20000;

	make_cluster(&f, 2, XM_DR_LB_LEAST_REQUEST);
	l7_active_add(f.eps[0]->id, 10);
	for (unsigned k = 0; k < total; k++)
		counts[pick(b, &f.c)]++;
	/* Two draws with replacement: the busy one wins only when drawn twice, 1/4 of the time. */
	cr_expect(counts[1] > total * 0.72 && counts[1] < total * 0.78, "idle endpoint: %u of %u", counts[1], total);
	l7_active_add(f.eps[0]->id, -10);
	cr_expect_eq(l7_active_get(f.eps[0]->id), 0);
	l7_balancer_free(b);
}

Test(l7_balance, least_request_never_picks_the_busiest_of_many)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(7);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 20000;

	make_cluster(&f, 4, XM_DR_LB_LEAST_REQUEST);
	for (size_t i = 0; i < 4; i++)
		l7_active_add(f.eps[i]->id, (int)i * 3); /* loads 0, 3, 6, 9 */
	for (unsigned k = 0; k < total; k++)
		counts[pick(b, &f.c)]++;
	/* P(endpoint i) = P(both draws >= i) - P(both > i) = ((4-i)^2 - (3-i)^2) / 16: 7/16, 5/16, 3/16, 1/16. */
	cr_expect(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[3], "%u %u %u %u", counts[0],
		  counts[1], counts[2], counts[3]);
	cr_expect((double)counts[0] / total > 7.0 / 16 - 0.02 && (double)counts[0] / total < 7.0 / 16 + 0.02,
		  "least loaded: %u of %u", counts[0], total);
	cr_expect((double)counts[3] / total > 1.0 / 16 - 0.015 && (double)counts[3] / total < 1.0 / 16 + 0.015,
		  "busiest: %u of %u", counts[3], total);
	for (size_t i = 0; i < 4; i++)
		l7_active_add(f.eps[i]->id, -(int)i * 3);
	l7_balancer_free(b);
}

Test(l7_balance, least_request_spreads_when_loads_are_equal)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(8);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 40000;

	make_cluster(&f, 5, XM_DR_LB_LEAST_REQUEST);
	for (unsigned k = 0; k < total; k++)
		counts[pick(b, &f.c)]++;
	expect_share(counts, 5, 0.2, 0.02, total, "LEAST_REQUEST, equal loads");
	l7_balancer_free(b);
}

Test(l7_balance, unset_and_passthrough_balance_as_least_request)
{
	static struct fixture lr, unset, pass;
	struct l7_balancer *b_lr = new_balancer(9), *b_unset = new_balancer(9), *b_pass = new_balancer(9);

	make_cluster(&lr, 6, XM_DR_LB_LEAST_REQUEST);
	make_cluster(&unset, 6, XM_DR_LB_UNSET);
	make_cluster(&pass, 6, XM_DR_LB_PASSTHROUGH);
	l7_active_add(lr.eps[2]->id, 4);
	for (int k = 0; k < 1000; k++) {
		int i = pick(b_lr, &lr.c);

		cr_assert_eq(pick(b_unset, &unset.c), i, "UNSET is Istio's default, LEAST_REQUEST");
		cr_assert_eq(pick(b_pass, &pass.c), i, "PASSTHROUGH is LEAST_REQUEST behind a VIP");
	}
	l7_active_add(lr.eps[2]->id, -4);
	l7_balancer_free(b_lr);
	l7_balancer_free(b_unset);
	l7_balancer_free(b_pass);
}

Test(l7_balance, least_request_skips_ejected)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(10);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 20000;

	make_cluster(&f, 3, XM_DR_LB_LEAST_REQUEST);
	eject(&f, 0);
	l7_active_add(f.eps[1]->id, 5); /* the ejected endpoint is the idle one: still never picked */
	for (unsigned k = 0; k < total; k++)
		counts[pick(b, &f.c)]++;
	cr_expect_eq(counts[0], 0);
	cr_expect(counts[2] > total * 0.72 && counts[2] < total * 0.78, "idle healthy endpoint: %u of %u", counts[2],
		  total);
	l7_active_add(f.eps[1]->id, -5);
	l7_balancer_free(b);
}

Test(l7_balance, header_hash_sticks_across_picks_and_balancers)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(11), *fresh;
	int first = -1;

	make_hash_cluster(&f, 5, XM_DR_HASH_HTTP_HEADER, "x-user");
	for (int k = 0; k < 200; k++) {
		int i = pick_header(b, &f.c, k % 2 ? "X-User" : "x-user", "alice");

		cr_assert_geq(i, 0);
		if (first < 0)
			first = i;
		cr_assert_eq(i, first, "pick %d: the same key goes to the same endpoint (names match in any case)", k);
	}
	fresh = new_balancer(999);
	cr_expect_eq(pick_header(fresh, &f.c, "x-user", "alice"), first, "another worker, another seed: the same");
	l7_balancer_reset(b);
	cr_expect_eq(pick_header(b, &f.c, "x-user", "alice"), first, "and after a reset");
	l7_balancer_free(b);
	l7_balancer_free(fresh);
}

static void key_name(char *buf, size_t size, unsigned k)
{
	snprintf(buf, size, "user-%u", k);
}

Test(l7_balance, header_hash_spreads_different_keys)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(12);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 20000;
	char key[32];

	make_hash_cluster(&f, 5, XM_DR_HASH_HTTP_HEADER, "x-user");
	for (unsigned k = 0; k < total; k++) {
		key_name(key, sizeof(key), k);
		counts[pick_header(b, &f.c, "x-user", key)]++;
	}
	expect_share(counts, 5, 0.2, 0.02, total, "header hash over 20000 keys");
	l7_balancer_free(b);
}

Test(l7_balance, header_hash_removal_moves_about_one_nth_of_keys)
{
	static struct fixture all, fewer;
	struct l7_balancer *b = new_balancer(13);
	const unsigned total = 20000, n = 10, removed = 6;
	unsigned moved = 0, moved_elsewhere = 0;
	char key[32];

	make_hash_cluster(&all, n, XM_DR_HASH_HTTP_HEADER, "x-user");
	make_hash_cluster(&fewer, n, XM_DR_HASH_HTTP_HEADER, "x-user");
	/* The same endpoints but one, in the same order: positions after it shift down by one. */
	memmove(&fewer.eps[removed], &fewer.eps[removed + 1], (n - removed - 1) * sizeof(fewer.eps[0]));
	fewer.c.n_endpoints = n - 1;
	for (unsigned k = 0; k < total; k++) {
		uint32_t before, after;

		key_name(key, sizeof(key), k);
		before = all.eps[pick_header(b, &all.c, "x-user", key)]->id;
		after = fewer.eps[pick_header(b, &fewer.c, "x-user", key)]->id;
		cr_assert_neq(after, ID_BASE + removed);
		if (before != after) {
			moved++;
			moved_elsewhere += before != ID_BASE + removed;
		}
	}
	cr_log_info("removal of 1 of %u endpoints moved %.2f%% of %u keys, %u of them from a remaining endpoint", n,
		    100.0 * moved / total, total, moved_elsewhere);
	cr_expect((double)moved / total > 1.0 / n - 0.02 && (double)moved / total < 1.0 / n + 0.02,
		  "%u of %u keys moved, want about 1/%u", moved, total, n);
	cr_expect_leq(moved_elsewhere, total / 100, "keys of remaining endpoints stay put (%u moved)", moved_elsewhere);
	l7_balancer_free(b);
}

Test(l7_balance, header_values_hash_in_any_order)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(14);
	struct request r;
	struct l7_pick out;
	unsigned same = 0;
	char k1[32], k2[32];

	make_hash_cluster(&f, 8, XM_DR_HASH_HTTP_HEADER, "x-user");
	for (unsigned k = 0; k < 200; k++) {
		int ab, ba;

		key_name(k1, sizeof(k1), k);
		key_name(k2, sizeof(k2), k + 1000);
		ab = pick_rq(b, &f.c, request(&r, NULL, "x-user", k1, "x-user", k2), &out);
		ba = pick_rq(b, &f.c, request(&r, NULL, "x-user", k2, "X-USER", k1), &out);
		cr_assert_eq(ab, ba, "values {%s, %s} in either order", k1, k2);
		same += ab == pick_header(b, &f.c, "x-user", k1);
	}
	cr_expect_lt(same, 100, "both values count, not just the first (%u of 200 equal the first's)", same);
	l7_balancer_free(b);
}

Test(l7_balance, missing_hash_key_balances_at_random)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(15);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 20000;

	make_hash_cluster(&f, 4, XM_DR_HASH_HTTP_HEADER, "x-user");
	for (unsigned k = 0; k < total; k++)
		counts[pick_header(b, &f.c, "x-other", "alice")]++;
	expect_share(counts, 4, 0.25, 0.02, total, "consistentHash without its header (Envoy: random)");
	l7_balancer_free(b);
}

static int pick_cookie(struct l7_balancer *b, const struct l7_cluster *c, const char *cookie_header,
		       struct l7_pick *out)
{
	struct request r;

	return pick_rq(b, c, request(&r, NULL, "Cookie", cookie_header, NULL, NULL), out);
}

Test(l7_balance, cookie_is_issued_when_absent_and_then_sticks)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(16), *fresh = new_balancer(77);
	struct l7_pick out;
	char value[17], header[128], want[256];
	int first;

	make_hash_cluster(&f, 6, XM_DR_HASH_HTTP_COOKIE, "session");
	f.c.policy.lb.cookie_ttl_set = true;
	f.c.policy.lb.cookie_ttl_ms = 3600 * 1000 + 999;
	snprintf(f.c.policy.lb.cookie_path, sizeof(f.c.policy.lb.cookie_path), "/shop");
	first = pick_cookie(b, &f.c, "theme=dark", &out);
	cr_assert_geq(first, 0);
	cr_assert_eq(sscanf(out.set_cookie, "session=\"%16[0-9a-f]\"", value), 1, "Set-Cookie: %s", out.set_cookie);
	cr_assert_eq(strlen(value), 16);
	snprintf(want, sizeof(want), "session=\"%s\"; Max-Age=3600; Path=/shop; HttpOnly", value);
	cr_expect_str_eq(out.set_cookie, want);

	/* The client sends it back: no new cookie, and the endpoint the issuing pick chose. */
	snprintf(header, sizeof(header), "theme=dark; session=%s", value);
	for (int k = 0; k < 50; k++) {
		cr_assert_eq(pick_cookie(b, &f.c, header, &out), first);
		cr_assert_str_eq(out.set_cookie, "");
	}
	snprintf(header, sizeof(header), "session=\"%s\";theme=dark", value);
	cr_expect_eq(pick_cookie(fresh, &f.c, header, &out), first, "quoted, on another worker: the same");
	cr_expect_str_eq(out.set_cookie, "");

	/* Each cookieless request gets its own cookie. */
	pick_cookie(b, &f.c, "theme=dark", &out);
	cr_expect_str_neq(out.set_cookie, want);
	l7_balancer_free(b);
	l7_balancer_free(fresh);
}

Test(l7_balance, cookie_without_ttl_is_never_issued)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(17);
	unsigned counts[MAX_EP] = { 0 };
	struct l7_pick out;
	const unsigned total = 8000;

	make_hash_cluster(&f, 4, XM_DR_HASH_HTTP_COOKIE, "session");
	for (unsigned k = 0; k < total; k++) {
		counts[pick_cookie(b, &f.c, "session=", &out)]++; /* empty: absent, as in Envoy */
		cr_assert_str_eq(out.set_cookie, "");
	}
	expect_share(counts, 4, 0.25, 0.03, total, "httpCookie without ttl and no cookie (random)");
	l7_balancer_free(b);
}

Test(l7_balance, zero_ttl_issues_a_session_cookie)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(18);
	struct l7_pick out;
	char value[17], want[128];

	make_hash_cluster(&f, 4, XM_DR_HASH_HTTP_COOKIE, "sticky");
	f.c.policy.lb.cookie_ttl_set = true;
	pick_cookie(b, &f.c, "stickyx=1; xsticky=2", &out);
	cr_assert_eq(sscanf(out.set_cookie, "sticky=\"%16[0-9a-f]\"", value), 1, "Set-Cookie: %s", out.set_cookie);
	snprintf(want, sizeof(want), "sticky=\"%s\"; HttpOnly", value);
	cr_expect_str_eq(out.set_cookie, want, "no Max-Age, no Path");
	l7_balancer_free(b);
}

Test(l7_balance, query_parameter_hash)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(19);
	struct request r;
	struct l7_pick out;
	unsigned counts[MAX_EP] = { 0 }, random_counts[MAX_EP] = { 0 };
	const unsigned total = 10000;
	char query[64];
	int alone, among, empty;

	make_hash_cluster(&f, 5, XM_DR_HASH_QUERY_PARAMETER, "user");
	alone = pick_rq(b, &f.c, request(&r, "user=bob", NULL, NULL, NULL, NULL), &out);
	among = pick_rq(b, &f.c, request(&r, "a=1&user=bob&user=eve&c", NULL, NULL, NULL, NULL), &out);
	cr_expect_eq(alone, among, "the first value counts");
	empty = pick_rq(b, &f.c, request(&r, "user", NULL, NULL, NULL, NULL), &out);
	cr_expect_eq(pick_rq(b, &f.c, request(&r, "x=1&user=", NULL, NULL, NULL, NULL), &out), empty,
		     "no '=' is the empty value");
	for (unsigned k = 0; k < total; k++) {
		snprintf(query, sizeof(query), "page=%u&user=u%u", k % 7, k);
		counts[pick_rq(b, &f.c, request(&r, query, NULL, NULL, NULL, NULL), &out)]++;
		cr_assert_eq(pick_rq(b, &f.c, request(&r, query + 7, NULL, NULL, NULL, NULL), &out) >= 0, 1);
		random_counts[pick_rq(b, &f.c, request(&r, "users=1&xuser=2", NULL, NULL, NULL, NULL), &out)]++;
	}
	expect_share(counts, 5, 0.2, 0.025, total, "query hash over 10000 keys");
	expect_share(random_counts, 5, 0.2, 0.025, total, "no such parameter (random)");
	l7_balancer_free(b);
}

Test(l7_balance, source_ip_hash)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(20), *fresh = new_balancer(21);
	unsigned counts[MAX_EP] = { 0 };
	const unsigned total = 10000;
	struct l7_pick out, again;
	union xm_addr v6;

	make_hash_cluster(&f, 5, XM_DR_HASH_SOURCE_IP, "");
	for (unsigned k = 0; k < total; k++) {
		union xm_addr a = { .bytes = { 10, 244, (uint8_t)(k >> 8), (uint8_t)k } };

		l7_balance_pick(b, &f.c, NULL, &a, XM_FAMILY_V4, &out);
		l7_balance_pick(fresh, &f.c, NULL, &a, XM_FAMILY_V4, &again);
		cr_assert_geq(out.index, 0);
		cr_assert_eq(out.index, again.index, "client %u: the same endpoint on every worker", k);
		counts[out.index]++;
	}
	expect_share(counts, 5, 0.2, 0.025, total, "source IP hash over 10000 clients");
	cr_assert_eq(inet_pton(AF_INET6, "fd00::a", v6.bytes), 1);
	l7_balance_pick(b, &f.c, NULL, &v6, XM_FAMILY_V6, &out);
	for (int k = 0; k < 20; k++) {
		l7_balance_pick(fresh, &f.c, NULL, &v6, XM_FAMILY_V6, &again);
		cr_assert_eq(again.index, out.index);
	}
	l7_balance_pick(b, &f.c, NULL, NULL, 0, &out);
	cr_expect_geq(out.index, 0, "no client address: random, still an endpoint");
	l7_balancer_free(b);
	l7_balancer_free(fresh);
}

Test(l7_balance, consistent_hash_probes_past_ejected_endpoints)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(22);
	const unsigned total = 5000;
	int before[5000];
	unsigned moved_to[MAX_EP] = { 0 }, victims = 0;
	char key[32];

	make_hash_cluster(&f, 6, XM_DR_HASH_HTTP_HEADER, "x-user");
	for (unsigned k = 0; k < total; k++) {
		key_name(key, sizeof(key), k);
		before[k] = pick_header(b, &f.c, "x-user", key);
	}
	eject(&f, 3);
	for (unsigned k = 0; k < total; k++) {
		int i;

		key_name(key, sizeof(key), k);
		i = pick_header(b, &f.c, "x-user", key);
		cr_assert_neq(i, 3);
		cr_assert_eq(pick_header(b, &f.c, "x-user", key), i, "a key keeps its fallback");
		if (before[k] == 3) {
			victims++;
			moved_to[i]++;
		} else {
			cr_assert_eq(i, before[k], "key %u of a healthy endpoint stays put", k);
		}
	}
	cr_assert_gt(victims, total / 10);
	for (size_t i = 0; i < 6; i++) {
		if (i != 3)
			cr_expect_gt(moved_to[i], victims / 10, "the ejected endpoint's keys spread: %zu got %u of %u",
				     i, moved_to[i], victims);
	}
	l7_balancer_free(b);
}

Test(l7_balance, all_ejected_means_no_endpoint)
{
	static const enum xm_dr_lb algos[] = { XM_DR_LB_ROUND_ROBIN, XM_DR_LB_RANDOM, XM_DR_LB_LEAST_REQUEST,
					       XM_DR_LB_UNSET, XM_DR_LB_CONSISTENT_HASH };
	static struct fixture f;
	struct l7_balancer *b = new_balancer(23);

	for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
		for (size_t n = 1; n <= 7; n += 3) {
			make_hash_cluster(&f, n, XM_DR_HASH_HTTP_HEADER, "x-user");
			f.c.policy.lb.simple = algos[a];
			for (size_t i = 0; i < n; i++)
				eject(&f, i);
			for (int k = 0; k < 20; k++) {
				char key[32];

				key_name(key, sizeof(key), (unsigned)k);
				cr_assert_eq(pick_header(b, &f.c, "x-user", key), NO_INDEX, "algo %d, %zu endpoints",
					     algos[a], n);
			}
			reset_ejections();
			l7_balancer_reset(b);
		}
	}
	l7_balancer_free(b);
}

Test(l7_balance, panic_routing_below_min_health_percent)
{
	static const enum xm_dr_lb algos[] = { XM_DR_LB_ROUND_ROBIN, XM_DR_LB_RANDOM, XM_DR_LB_LEAST_REQUEST,
					       XM_DR_LB_CONSISTENT_HASH };
	static struct fixture f;
	struct l7_balancer *b = new_balancer(24);

	for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
		unsigned counts[MAX_EP] = { 0 };
		char key[32];

		make_hash_cluster(&f, 4, XM_DR_HASH_HTTP_HEADER, "x-user");
		f.c.policy.lb.simple = algos[a];
		f.c.policy.outlier.min_health_percent = 50;
		eject(&f, 0);
		/* 3 of 4 healthy (75% >= 50%): ejected endpoints are skipped. */
		for (unsigned k = 0; k < 2000; k++) {
			key_name(key, sizeof(key), k);
			cr_assert_neq(pick_header(b, &f.c, "x-user", key), 0, "algo %d", algos[a]);
		}
		/* 1 of 4 (25% < 50%): Envoy's panic routing balances over all of them. */
		eject(&f, 1);
		eject(&f, 2);
		for (unsigned k = 0; k < 2000; k++) {
			key_name(key, sizeof(key), k);
			counts[pick_header(b, &f.c, "x-user", key)]++;
		}
		for (size_t i = 0; i < 4; i++)
			cr_expect_gt(counts[i], 300, "algo %d in panic: endpoint %zu got %u of 2000", algos[a], i,
				     counts[i]);
		/* None healthy: still panic, still an endpoint. */
		eject(&f, 3);
		key_name(key, sizeof(key), 1);
		cr_expect_geq(pick_header(b, &f.c, "x-user", key), 0);
		reset_ejections();
		l7_balancer_reset(b);
	}
	l7_balancer_free(b);
}

Test(l7_balance, empty_or_missing_cluster_has_no_endpoint)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(25);
	struct l7_pick out;

	make_cluster(&f, 0, XM_DR_LB_ROUND_ROBIN);
	cr_expect_eq(pick(b, &f.c), NO_INDEX);
	f.c.policy.lb.simple = XM_DR_LB_CONSISTENT_HASH;
	f.c.policy.lb.hash_key = XM_DR_HASH_HTTP_COOKIE;
	f.c.policy.lb.cookie_ttl_set = true;
	snprintf(f.c.policy.lb.hash_param, sizeof(f.c.policy.lb.hash_param), "session");
	memset(&out, 0x5a, sizeof(out));
	l7_balance_pick(b, &f.c, NULL, NULL, 0, &out);
	cr_expect_eq(out.index, NO_INDEX);
	cr_expect_str_eq(out.set_cookie, "", "no endpoint, no cookie");
	l7_balance_pick(b, NULL, NULL, NULL, 0, &out);
	cr_expect_eq(out.index, NO_INDEX);
	l7_balancer_free(b);
}

Test(l7_balance, outlier_state_is_asked_only_when_detection_is_on)
{
	static struct fixture f;
	struct l7_balancer *b = new_balancer(26), *blind = l7_balancer_new(26, NULL, NULL);

	make_cluster(&f, 3, XM_DR_LB_ROUND_ROBIN);
	f.svc.outlier_on = false;
	eject(&f, 0);
	for (int k = 0; k < 30; k++)
		pick(b, &f.c);
	cr_expect_eq(ejected_calls, 0, "no outlier detection: nothing is ever ejected, nothing to ask");
	f.svc.outlier_on = true;
	for (int k = 0; k < 30; k++) {
		cr_assert_neq(pick(b, &f.c), 0);
		cr_assert_geq(pick(blind, &f.c), 0, "no callback: nothing is ejected");
	}
	cr_expect_gt(ejected_calls, 0);
	cr_expect_leq(ejected_calls, 30 * 3, "at most one question per endpoint and pick (%lu)", ejected_calls);
	l7_balancer_free(b);
	l7_balancer_free(blind);
}

Test(l7_balance, a_reused_cluster_address_never_indexes_a_stale_table)
{
	static struct fixture f, small;
	struct l7_balancer *b = new_balancer(27);
	char key[32];

	make_hash_cluster(&f, 40, XM_DR_HASH_HTTP_HEADER, "x-user");
	f.c.policy.lb.maglev_table_size = 7; /* below the endpoint count: a larger prime is used */
	for (unsigned k = 0; k < 500; k++) {
		key_name(key, sizeof(key), k);
		cr_assert_geq(pick_header(b, &f.c, "x-user", key), 0);
	}
	/* The same cluster object now lists 3 other endpoints (a reset was missed): rebuilt, never stale. */
	make_cluster(&small, 3, XM_DR_LB_ROUND_ROBIN);
	f.c.endpoints = small.eps;
	f.c.n_endpoints = 3;
	for (unsigned k = 0; k < 500; k++) {
		key_name(key, sizeof(key), k);
		cr_assert_lt(pick_header(b, &f.c, "x-user", key), 3);
	}
	l7_balancer_free(b);
}

Test(l7_balance, many_clusters_keep_their_own_state)
{
	static struct fixture fs[40];
	struct l7_balancer *b = new_balancer(28);
	int prev[40];

	for (size_t i = 0; i < 40; i++) {
		make_cluster(&fs[i], 1 + i % 5, XM_DR_LB_ROUND_ROBIN);
		prev[i] = pick(b, &fs[i].c);
	}
	for (int round = 0; round < 10; round++) {
		for (size_t i = 0; i < 40; i++) {
			int now = pick(b, &fs[i].c);

			cr_assert_eq(now, (prev[i] + 1) % (int)(1 + i % 5), "cluster %zu", i);
			prev[i] = now;
		}
	}
	l7_balancer_free(b);
}

Test(l7_balance, active_request_counts)
{
	const uint32_t id = 4242;

	cr_expect_eq(l7_active_get(id), 0);
	l7_active_add(id, 3);
	l7_active_add(id, -1);
	cr_expect_eq(l7_active_get(id), 2);
	l7_active_add(id, -5);
	cr_expect_eq(l7_active_get(id), 0, "a transiently negative count reads as idle");
	l7_active_add(id, 3);
	cr_expect_eq(l7_active_get(id), 0);
	l7_active_add(XM_MAX_BACKENDS, 1);
	cr_expect_eq(l7_active_get(XM_MAX_BACKENDS), 0, "ids out of range are ignored");
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

Test(l7_balance, ns_per_pick)
{
	static struct fixture rr, hash;
	struct l7_balancer *b = new_balancer(29);
	struct request r;
	struct l7_pick out;
	const unsigned total = 1000000;
	unsigned counts[MAX_EP] = { 0 };
	char keys[64][16];
	double t0, rr_ns, hash_ns;

	make_cluster(&rr, 16, XM_DR_LB_ROUND_ROBIN);
	make_hash_cluster(&hash, 16, XM_DR_HASH_HTTP_HEADER, "x-user");
	/* The balancer's own cost: the proxy's ejection lookup is not part of it. */
	rr.svc.outlier_on = hash.svc.outlier_on = false;
	for (unsigned k = 0; k < 64; k++)
		snprintf(keys[k], sizeof(keys[k]), "user-%u", k);
	pick_header(b, &hash.c, "x-user", keys[0]); /* builds the table outside the timing */
	t0 = now_ns();
	for (unsigned k = 0; k < total; k++) {
		l7_balance_pick(b, &rr.c, NULL, NULL, 0, &out);
		counts[out.index]++;
	}
	rr_ns = (now_ns() - t0) / total;
	for (size_t i = 0; i < 16; i++)
		cr_assert_eq(counts[i], total / 16);
	request(&r, NULL, "accept", "*/*", "x-user", keys[0]);
	t0 = now_ns();
	for (unsigned k = 0; k < total; k++) {
		r.headers[1].value = str(keys[k % 64]);
		l7_balance_pick(b, &hash.c, &r.view, NULL, 0, &out);
		cr_assert_geq(out.index, 0);
	}
	hash_ns = (now_ns() - t0) / total;
	cr_log_info("ns per pick: ROUND_ROBIN %.1f, consistentHash on a header %.1f (16 endpoints)", rr_ns, hash_ns);
	fprintf(stderr, "l7_balance ns per pick: ROUND_ROBIN %.1f, header hash %.1f\n", rr_ns, hash_ns);
	l7_balancer_free(b);
}
