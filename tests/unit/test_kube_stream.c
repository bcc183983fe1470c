// SPDX-License-Identifier: Apache-2.0
/* The watch stream decoder: events split anywhere by the transport, bad lines skipped, bounded lines. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "kube/stream.h"

struct got {
	int n;
	enum kube_event_type type[8];
	char name[8][256], ns[8][64], rv[8][64];
	int code[8];
	int stop_after; /* 0: never */
};

static bool on_event(void *arg, const struct kube_event *ev)
{
	struct got *g = arg;

	if (g->n < 8) {
		g->type[g->n] = ev->type;
		snprintf(g->name[g->n], 256, "%s", ev->name);
		snprintf(g->ns[g->n], 64, "%s", ev->ns);
		snprintf(g->rv[g->n], 64, "%s", ev->resource_version);
		g->code[g->n] = ev->code;
	}
	g->n++;
	return !g->stop_after || g->n < g->stop_after;
}

static const char events[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\","
    "\"namespace\":\"ns1\",\"resourceVersion\":\"11\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"12\"}}}\n"
    "\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Service\",\"metadata\":{\"resourceVersion\":\"13\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns1\",\"resourceVersion\":"
    "\"14\"}}}\r\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old resource version\"}}\n";

static void check_all(const struct got *g, const struct kube_stream *s)
{
	cr_assert_eq(g->n, 5);
	cr_expect_eq(g->type[0], KUBE_EV_ADDED);
	cr_expect_str_eq(g->name[0], "a");
	cr_expect_str_eq(g->ns[0], "ns1");
	cr_expect_str_eq(g->rv[0], "11");
	cr_expect_eq(g->type[1], KUBE_EV_MODIFIED);
	cr_expect_str_eq(g->ns[1], "");
	cr_expect_eq(g->type[2], KUBE_EV_BOOKMARK);
	cr_expect_str_eq(g->rv[2], "13");
	cr_expect_eq(g->type[3], KUBE_EV_DELETED);
	cr_expect_eq(g->type[4], KUBE_EV_ERROR);
	cr_expect_eq(g->code[4], 410);
	cr_expect_eq(s->bad_lines, 0);
	cr_expect(!kube_stream_partial(s));
}

Test(kube_stream, whole_buffer)
{
	struct got g = { 0 };
	struct kube_stream s;

	kube_stream_init(&s, on_event, &g);
	cr_assert_eq(kube_stream_feed(&s, events, sizeof(events) - 1), 0);
	check_all(&g, &s);
	kube_stream_free(&s);
}

Test(kube_stream, every_split_point)
{
	for (size_t cut = 1; cut < sizeof(events) - 1; cut++) {
		struct got g = { 0 };
		struct kube_stream s;

		kube_stream_init(&s, on_event, &g);
		cr_assert_eq(kube_stream_feed(&s, events, cut), 0);
		cr_assert_eq(kube_stream_feed(&s, events + cut, sizeof(events) - 1 - cut), 0);
		check_all(&g, &s);
		kube_stream_free(&s);
	}
}

Test(kube_stream, byte_by_byte)
{
	struct got g = { 0 };
	struct kube_stream s;

	kube_stream_init(&s, on_event, &g);
	for (size_t i = 0; i < sizeof(events) - 1; i++)
		cr_assert_eq(kube_stream_feed(&s, events + i, 1), 0);
	check_all(&g, &s);
	kube_stream_free(&s);
}

Test(kube_stream, cut_mid_event_is_partial)
{
	struct got g = { 0 };
	struct kube_stream s;

	kube_stream_init(&s, on_event, &g);
	cr_assert_eq(kube_stream_feed(&s, events, 40), 0);
	cr_expect_eq(g.n, 0);
	cr_expect(kube_stream_partial(&s));
	kube_stream_free(&s);
}

Test(kube_stream, bad_lines_are_skipped)
{
	static const char in[] = "not json\n"
				 "{\"type\":\"ADDED\"\n"			       /* unterminated */
				 "{\"type\":\"EXPLODED\",\"object\":{}}\n"	       /* unknown type */
				 "{\"type\":\"ADDED\",\"object\":[1]}\n"	       /* object not a map */
				 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}\n" /* no name */
				 "[1,2]\n"
				 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"ok\"}}}\n";
	struct got g = { 0 };
	struct kube_stream s;

	kube_stream_init(&s, on_event, &g);
	cr_assert_eq(kube_stream_feed(&s, in, sizeof(in) - 1), 0);
	cr_expect_eq(g.n, 1);
	cr_expect_str_eq(g.name[0], "ok");
	cr_expect_eq(s.bad_lines, 6);
	kube_stream_free(&s);
}

Test(kube_stream, callback_stops)
{
	struct got g = { .stop_after = 2 };
	struct kube_stream s;

	kube_stream_init(&s, on_event, &g);
	cr_expect_eq(kube_stream_feed(&s, events, sizeof(events) - 1), -ECANCELED);
	cr_expect_eq(g.n, 2);
	kube_stream_free(&s);
}

Test(kube_stream, overlong_line_skipped_then_next_decodes)
{
	static const char ok[] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"after\"}}}\n";
	size_t big = KUBE_STREAM_MAX_LINE + 100;
	char *junk = malloc(big);
	struct got g = { 0 };
	struct kube_stream s;

	cr_assert_not_null(junk);
	memset(junk, 'x', big);
	kube_stream_init(&s, on_event, &g);
	cr_assert_eq(kube_stream_feed(&s, junk, big / 2), 0);
	cr_assert_eq(kube_stream_feed(&s, junk, big - big / 2), 0);
	cr_assert_eq(kube_stream_feed(&s, "\n", 1), 0);
	cr_expect_leq(s.cap, KUBE_STREAM_MAX_LINE * 2);
	cr_assert_eq(kube_stream_feed(&s, ok, sizeof(ok) - 1), 0);
	cr_expect_eq(g.n, 1);
	cr_expect_str_eq(g.name[0], "after");
	cr_expect_eq(s.bad_lines, 1);
	kube_stream_free(&s);
	free(junk);
}
