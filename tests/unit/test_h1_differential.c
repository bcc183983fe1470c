/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1 parser against an oracle, Debian's libhttp-parser (used only here), over a few thousand
 * requests: seeds and deterministic mutations of them. Where both accept a message they must frame it the
 * same (method, target, fields, content-length or chunked, the body bytes, where it ends); where they
 * disagree, xmesh must be the one that refuses.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h1.h"

#define MAX_LINES 40
#define TEXT_MAX  600
#define BODY_MAX  2048
#define MSG_MAX	  (MAX_LINES * (TEXT_MAX + 4) + BODY_MAX)

/* A request as lines, so that mutations can work on fields, line ends and the body separately. */
struct msg {
	char line[MAX_LINES][TEXT_MAX]; /* [0]: request line; then field lines (raw "Name: value") */
	int n_lines;
	const char *eol[MAX_LINES + 1]; /* after each line, [n_lines]: the blank line; NULL: CR LF */
	char body[BODY_MAX];		/* the bytes after the head, as on the wire */
	size_t body_len;
};

struct seed {
	const char *line;
	const char *fields[12];
	const char *body; /* payload; with chunked, encoded in 7-byte chunks */
	bool chunked, cl; /* add Transfer-Encoding: chunked / Content-Length: len(body) */
};

static const struct seed seeds[] = {
	{ .line = "GET / HTTP/1.1", .fields = { "Host: a" } },
	{ .line = "GET /index.html?q=1&r=%20 HTTP/1.1",
	  .fields = { "Host: www.example.com", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
		      "Accept: text/html,*/*;q=0.8", "Accept-Encoding: gzip, deflate",
		      "Accept-Language: en-US,en;q=0.5", "Cookie: a=b; c=d", "Connection: keep-alive" } },
	{ .line = "POST /api/v1/items HTTP/1.1",
	  .fields = { "Host: api", "Content-Type: application/json" },
	  .body = "{\"name\":\"x\",\"n\":1}",
	  .cl = true },
	{ .line = "PUT /upload HTTP/1.1",
	  .fields = { "Host: up", "Expect: 100-continue" },
	  .body = "0123456789abcdefghijklmnopqrstuvwxyz",
	  .chunked = true },
	{ .line = "POST /form HTTP/1.1",
	  .fields = { "Host: f", "X-Trace: 1" },
	  .body = "a=1&b=2&c=3",
	  .chunked = true },
	{ .line = "HEAD /h HTTP/1.1", .fields = { "Host: h" } },
	{ .line = "DELETE /items/42 HTTP/1.1", .fields = { "Host: d", "Authorization: Bearer abc.def.ghi" } },
	{ .line = "OPTIONS * HTTP/1.1", .fields = { "Host: o" } },
	{ .line = "GET http://svc.ns.svc.cluster.local:8080/p/q?x HTTP/1.1",
	  .fields = { "Host: svc.ns.svc.cluster.local:8080" } },
	{ .line = "CONNECT example.com:443 HTTP/1.1", .fields = { "Host: example.com:443" } },
	{ .line = "GET /chat HTTP/1.1",
	  .fields = { "Host: ws", "Upgrade: websocket", "Connection: Upgrade",
		      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13" } },
	{ .line = "GET /old HTTP/1.0", .fields = { "User-Agent: old" } },
	{ .line = "POST /old HTTP/1.0", .fields = { "Connection: keep-alive" }, .body = "hello", .cl = true },
	{ .line = "PATCH /p HTTP/1.1",
	  .fields = { "Host: p", "Content-Type: text/plain", "Connection: close" },
	  .body = "patch body",
	  .cl = true },
	{ .line = "POST /empty HTTP/1.1", .fields = { "Host: e" }, .body = "", .cl = true },
	{ .line = "GET /t HTTP/1.1", .fields = { "Host: t", "X-Empty:", "X-Spaces:   v   ", "X-Tab:\tv" } },
};

/* Deterministic: the same requests on every run. */
static uint32_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void chunk_body(struct msg *m, const char *payload)
{
	size_t len = strlen(payload), off = 0;

	m->body_len = 0;
	while (off < len) {
		size_t n = len - off < 7 ? len - off : 7;

		m->body_len += (size_t)sprintf(m->body + m->body_len, "%zx\r\n", n);
		memcpy(m->body + m->body_len, payload + off, n);
		m->body_len += n;
		m->body_len += (size_t)sprintf(m->body + m->body_len, "\r\n");
		off += n;
	}
	m->body_len += (size_t)sprintf(m->body + m->body_len, "0\r\n\r\n");
}

static void from_seed(struct msg *m, const struct seed *s)
{
	int i;

	memset(m, 0, sizeof(*m));
	snprintf(m->line[0], TEXT_MAX, "%s", s->line);
	m->n_lines = 1;
	for (i = 0; i < 12 && s->fields[i]; i++)
		snprintf(m->line[m->n_lines++], TEXT_MAX, "%s", s->fields[i]);
	if (s->chunked)
		snprintf(m->line[m->n_lines++], TEXT_MAX, "Transfer-Encoding: chunked");
	if (s->cl)
		snprintf(m->line[m->n_lines++], TEXT_MAX, "Content-Length: %zu", strlen(s->body));
	if (s->body && s->chunked)
		chunk_body(m, s->body);
	else if (s->body)
		m->body_len = (size_t)sprintf(m->body, "%s", s->body);
}

static size_t render(const struct msg *m, char *out)
{
	size_t n = 0;
	int i;

	for (i = 0; i <= m->n_lines; i++) {
		const char *eol = m->eol[i] ? m->eol[i] : "\r\n";

		if (i < m->n_lines)
			n += (size_t)sprintf(out + n, "%s", m->line[i]);
		n += (size_t)sprintf(out + n, "%s", eol);
	}
	memcpy(out + n, m->body, m->body_len);
	return n + m->body_len;
}

static void add_field(struct msg *m, const char *f)
{
	if (m->n_lines < MAX_LINES)
		snprintf(m->line[m->n_lines++], TEXT_MAX, "%s", f);
}

/* The field line whose name is name, or 0. */
static int find_line(const struct msg *m, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 1; i < m->n_lines; i++)
		if (!strncasecmp(m->line[i], name, n) && m->line[i][n] == ':')
			return i;
	return 0;
}

static const char *const cl_values[] = { "5",	"05", "5, 5", "5,5", "+5", "-1",
					 " 5 ", "",   "abc",  "0x5", "0",  "99999999999999999999",
					 "3",	"1 0" };
static const char *const te_values[] = { "chunked",	"Chunked",     "gzip, chunked", "chunked, gzip",
					 "identity",	"xchunked",    " chunked ",	"chunked, chunked",
					 "chunked;a=b", "\"chunked\"", "chunked,",	",chunked",
					 "gzip" };
static const char *const eol_variants[] = { "\n", "\r", "\r\r\n", "\n\r", " \r\n", "\r\n\r\n" };
static const char *const chunk_bodies[] = {
	"5\r\nhello\r\n0\r\n\r\n",
	"5;ext=1\r\nhello\r\n0\r\n\r\n",
	"00005\r\nhello\r\n0\r\n\r\n",
	"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"0x5\r\nhello\r\n0\r\n\r\n",
	"5 \r\nhello\r\n0\r\n\r\n",
	"-5\r\nhello\r\n0\r\n\r\n",
	"5\r\nhelloXX0\r\n\r\n",
	"5\nhello\n0\n\n",
	"5\r\nhello\n0\r\n\r\n",
	"ffffffffffffffffff\r\nx\r\n",
	"\r\nhello\r\n0\r\n\r\n",
	"3\r\nhello\r\n0\r\n\r\n",
	"5\r\nhello\r\n0\r\n\r",
	"A\r\n0123456789\r\n0\r\n\r\n",
	"5;a\nb\r\nhello\r\n0\r\n\r\n",
};

/* Applies mutation kind k with parameter v to m. */
static void mutate(struct msg *m, int k, uint32_t v)
{
	int line = m->n_lines > 1 ? 1 + (int)(v % (uint32_t)(m->n_lines - 1)) : 0;
	char tmp[TEXT_MAX], *colon;
	size_t i;

	switch (k) {
	case 0: /* header name case */
		for (i = 0; line && m->line[line][i] && m->line[line][i] != ':'; i++)
			m->line[line][i] =
			    (char)((v >> (i % 8)) & 1 ? toupper(m->line[line][i]) : tolower(m->line[line][i]));
		break;
	case 1: /* duplicate a field */
		if (line) {
			snprintf(tmp, sizeof(tmp), "%s", m->line[line]);
			add_field(m, tmp);
		}
		break;
	case 2: /* remove a field */
		if (line) {
			memmove(m->line[line], m->line[line + 1], (size_t)(m->n_lines - line - 1) * TEXT_MAX);
			m->n_lines--;
		}
		break;
	case 3: /* Content-Length */
		snprintf(tmp, sizeof(tmp), "Content-Length: %s",
			 cl_values[v % (sizeof(cl_values) / sizeof(*cl_values))]);
		add_field(m, tmp);
		break;
	case 4: /* Transfer-Encoding */
		snprintf(tmp, sizeof(tmp), "Transfer-Encoding: %s",
			 te_values[v % (sizeof(te_values) / sizeof(*te_values))]);
		add_field(m, tmp);
		break;
	case 5: /* whitespace around the colon, or a folded line */
		if (!line || !(colon = strchr(m->line[line], ':')))
			break;
		snprintf(tmp, sizeof(tmp), "%s", colon + 1);
		*colon = '\0';
		if (v % 4 == 0)
			snprintf(m->line[line] + strlen(m->line[line]), 16, " :");
		else if (v % 4 == 1)
			snprintf(m->line[line] + strlen(m->line[line]), 16, "\t:");
		else
			snprintf(m->line[line] + strlen(m->line[line]), 16, ":");
		snprintf(m->line[line] + strlen(m->line[line]), TEXT_MAX - strlen(m->line[line]) - 1, "%s%s",
			 v % 4 == 3 ? "\t " : "", tmp);
		if (v % 4 == 2) /* obs-fold: the value continues on the next line */
			memmove(m->line[line], " ", 1);
		break;
	case 6: /* line ends */
		m->eol[v % (uint32_t)(m->n_lines + 1)] =
		    eol_variants[(v / 64) % (sizeof(eol_variants) / sizeof(*eol_variants))];
		break;
	case 7: /* chunked body */
		if (!find_line(m, "Transfer-Encoding"))
			add_field(m, "Transfer-Encoding: chunked");
		m->body_len =
		    (size_t)sprintf(m->body, "%s", chunk_bodies[v % (sizeof(chunk_bodies) / sizeof(*chunk_bodies))]);
		break;
	case 8: /* the method's case, or another method */
		if (v % 3 == 0) {
			for (i = 0; m->line[0][i] && m->line[0][i] != ' '; i++)
				m->line[0][i] = (char)tolower(m->line[0][i]);
		} else {
			static const char *const methods[] = { "GET", "POST", "PURGE", "MKCOL", "G@T", "GE", "SEARCH" };
			char *sp = strchr(m->line[0], ' ');

			snprintf(tmp, sizeof(tmp), "%s%s", methods[v % 7], sp ? sp : "");
			snprintf(m->line[0], TEXT_MAX, "%s", tmp);
		}
		break;
	case 9: { /* the version */
		static const char *const versions[] = { "HTTP/1.0", "HTTP/1.1",	 "HTTP/1.2", "HTTP/2.0",
							"http/1.1", "HTTP/1.1 ", "HTTP/11",  "HTTP/1.01" };
		char *sp = strrchr(m->line[0], ' ');

		if (sp)
			snprintf(sp + 1, TEXT_MAX - (size_t)(sp + 1 - m->line[0]), "%s", versions[v % 8]);
		break;
	}
	case 10: { /* the target */
		static const char *const targets[] = { "/a b",	 "/a\tb",	 "/a#f",   "*",		"a/b",
						       "/a\x01", "/%00",	 "/a?b?c", "http://h/", "//x",
						       "/\x7f",	 "/caf\xc3\xa9", "/a|b^c", "/{x}",	"https://u@h/",
						       "h:80",	 "http://h:80" };
		char *a = strchr(m->line[0], ' '), *b = strrchr(m->line[0], ' ');

		if (a && b && a != b) {
			snprintf(tmp, sizeof(tmp), "%s", b);
			snprintf(a + 1, TEXT_MAX - (size_t)(a + 1 - m->line[0]), "%s%s", targets[v % 17], tmp);
		}
		break;
	}
	case 11: /* a control byte or a bare CR in a value */
		if (line && strlen(m->line[line]) > 3) {
			static const char ctl[] = { '\x01', '\x7f', '\r', '\x1b', '\t', '\x0b', '\x0c' };

			m->line[line][strlen(m->line[line]) - 1] = ctl[v % sizeof(ctl)];
		}
		break;
	case 12: /* Host: none, two, an odd one */
		if (v % 3 == 0)
			add_field(m, "Host: second");
		else if (v % 3 == 1 && find_line(m, "Host"))
			mutate(m, 2, (uint32_t)find_line(m, "Host") - 1);
		else
			add_field(m, "host: a b");
		break;
	case 13: /* Connection tokens */
		add_field(m, (const char *[]){ "Connection: close", "Connection: keep-alive", "connection: Close, x",
					       "Connection: upgrade", "Connection: KEEP-ALIVE" }[v % 5]);
		break;
	}
}

#define N_KINDS 14

/* What an implementation made of the bytes. */
enum outcome {
	REFUSED,
	INCOMPLETE,
	COMPLETE
};

struct view {
	enum outcome outcome;
	char method[32];
	char target[TEXT_MAX];
	int n_fields;
	char name[MAX_LINES * 2][TEXT_MAX], value[MAX_LINES * 2][TEXT_MAX];
	bool chunked;
	uint64_t content_length;
	char body[BODY_MAX];
	size_t body_len;
	size_t consumed; /* head and body */
	bool tunnel;	 /* CONNECT: nothing framed after the head */
	const char *why;
};

/* The oracle, through libhttp-parser's callbacks. */
struct oracle {
	http_parser p;
	struct view *v;
	bool in_value, head_done, done;
};

static int o_url(http_parser *p, const char *at, size_t len)
{
	struct view *v = ((struct oracle *)p->data)->v;

	strncat(v->target, at, len < TEXT_MAX - 1 - strlen(v->target) ? len : TEXT_MAX - 1 - strlen(v->target));
	return 0;
}

static int o_field(http_parser *p, const char *at, size_t len)
{
	struct oracle *o = p->data;
	struct view *v = o->v;

	if (o->head_done) /* a trailer field: compared as body framing only */
		return 0;
	if (o->in_value || !v->n_fields) {
		if (v->n_fields == MAX_LINES * 2)
			return 1;
		v->n_fields++;
		o->in_value = false;
	}
	strncat(v->name[v->n_fields - 1], at, len);
	return 0;
}

static int o_value(http_parser *p, const char *at, size_t len)
{
	struct oracle *o = p->data;

	if (o->head_done)
		return 0;
	o->in_value = true;
	strncat(o->v->value[o->v->n_fields - 1], at, len);
	return 0;
}

static int o_headers_complete(http_parser *p)
{
	struct oracle *o = p->data;

	o->head_done = true;
	o->v->chunked = p->flags & F_CHUNKED;
	o->v->content_length = p->content_length == ULLONG_MAX ? 0 : p->content_length;
	snprintf(o->v->method, sizeof(o->v->method), "%s", http_method_str(p->method));
	return 0;
}

static int o_body(http_parser *p, const char *at, size_t len)
{
	struct view *v = ((struct oracle *)p->data)->v;

	if (v->body_len + len > BODY_MAX)
		return 1;
	memcpy(v->body + v->body_len, at, len);
	v->body_len += len;
	return 0;
}

static int o_complete(http_parser *p)
{
	((struct oracle *)p->data)->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static void oracle_view(const char *buf, size_t len, struct view *v)
{
	static const http_parser_settings settings = {
		.on_url = o_url,
		.on_header_field = o_field,
		.on_header_value = o_value,
		.on_headers_complete = o_headers_complete,
		.on_body = o_body,
		.on_message_complete = o_complete,
	};
	struct oracle o = { .v = v };
	size_t n;

	memset(v, 0, sizeof(*v));
	http_parser_init(&o.p, HTTP_REQUEST);
	o.p.data = &o;
	n = http_parser_execute(&o.p, &settings, buf, len);
	if (HTTP_PARSER_ERRNO(&o.p) != HPE_OK && HTTP_PARSER_ERRNO(&o.p) != HPE_PAUSED) {
		v->outcome = REFUSED;
		v->why = http_errno_name(HTTP_PARSER_ERRNO(&o.p));
		return;
	}
	v->tunnel = o.p.method == HTTP_CONNECT;
	v->outcome = o.done ? COMPLETE : INCOMPLETE;
	v->consumed = n;
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

static void xmesh_view(const char *buf, size_t len, struct view *v)
{
	static struct h1_request req;
	struct h1_chunked c;
	enum h1_error err;
	int head = h1_parse_request(buf, len, &req, &err);
	uint32_t i;

	memset(v, 0, sizeof(*v));
	if (head <= 0) {
		v->outcome = head < 0 ? REFUSED : INCOMPLETE;
		v->why = h1_error_name(err);
		return;
	}
	snprintf(v->method, sizeof(v->method), "%.*s", (int)req.method.len, req.method.p);
	snprintf(v->target, sizeof(v->target), "%.*s", (int)req.target.len, req.target.p);
	v->n_fields = (int)req.n_headers;
	for (i = 0; i < req.n_headers; i++) {
		snprintf(v->name[i], TEXT_MAX, "%.*s", (int)req.headers[i].name.len, req.headers[i].name.p);
		snprintf(v->value[i], TEXT_MAX, "%.*s", (int)req.headers[i].value.len, req.headers[i].value.p);
	}
	v->chunked = req.body == H1_BODY_CHUNKED;
	v->content_length = req.content_length;
	v->tunnel = req.is_connect; /* an Upgrade request's own body is framed as usual */
	v->consumed = (size_t)head;
	v->outcome = COMPLETE;
	if (v->tunnel)
		return;
	if (req.body == H1_BODY_LENGTH) {
		if (len - (size_t)head < req.content_length) {
			v->outcome = INCOMPLETE;
			return;
		}
		memcpy(v->body, buf + head, req.content_length);
		v->body_len = req.content_length;
		v->consumed += req.content_length;
	} else if (req.body == H1_BODY_CHUNKED) {
		size_t off;

		/* Byte by byte: a byte is payload exactly when it moves data_bytes. */
		h1_chunked_init(&c);
		for (off = (size_t)head; off < len && !c.done; off++) {
			uint64_t before = c.data_bytes;

			if (h1_chunked_scan(&c, buf + off, 1, &err) < 0) {
				v->outcome = REFUSED;
				v->why = h1_error_name(err);
				return;
			}
			if (c.data_bytes > before)
				v->body[v->body_len++] = buf[off];
		}
		if (!c.done)
			v->outcome = INCOMPLETE;
		v->consumed = off;
	}
}

/* Methods libhttp-parser knows; it refuses every other token, which RFC 9110 allows. */
static bool oracle_knows_method(const char *m)
{
#define XX(num, name, string)                                                                                          \
	if (!strcmp(m, #string))                                                                                       \
		return true;
	HTTP_METHOD_MAP(XX)
#undef XX
	return false;
}

struct tally {
	unsigned int total, both, xmesh_only_refused, oracle_only_refused_method, both_refused, incomplete;
};

/* Returns NULL when the two agree (or xmesh is the stricter), else what differs. */
static const char *compare(const char *buf, size_t len, struct tally *t)
{
	static struct view x, o;
	int i;

	xmesh_view(buf, len, &x);
	oracle_view(buf, len, &o);
	t->total++;
	if (x.outcome == REFUSED) {
		if (o.outcome == REFUSED)
			t->both_refused++;
		else
			t->xmesh_only_refused++;
		return NULL;
	}
	if (o.outcome == REFUSED) {
		/* The one divergence allowed: a method token the oracle has no entry for. */
		if (!strcmp(o.why, "HPE_INVALID_METHOD") && x.method[0] && !oracle_knows_method(x.method)) {
			t->oracle_only_refused_method++;
			return NULL;
		}
		return "xmesh accepts what libhttp-parser refuses";
	}
	if (x.outcome != o.outcome)
		return x.outcome == COMPLETE ? "xmesh sees a complete message, libhttp-parser waits for more"
					     : "libhttp-parser sees a complete message, xmesh waits for more";
	if (x.outcome == INCOMPLETE) {
		t->incomplete++;
		return NULL;
	}
	t->both++;
	if (strcmp(x.method, o.method))
		return "method";
	if (strcmp(x.target, o.target))
		return "target";
	if (x.n_fields != o.n_fields)
		return "number of fields";
	for (i = 0; i < x.n_fields; i++) {
		trim(o.value[i]);
		if (strcmp(x.name[i], o.name[i]))
			return "field name";
		if (strcmp(x.value[i], o.value[i]))
			return "field value";
	}
	if (x.tunnel != o.tunnel)
		return "CONNECT";
	if (x.tunnel)
		return x.consumed == o.consumed ? NULL : "head length";
	if (x.chunked != o.chunked)
		return "chunked or not";
	if (!x.chunked && x.content_length != o.content_length)
		return "content length";
	if (x.body_len != o.body_len || memcmp(x.body, o.body, x.body_len))
		return "body bytes";
	if (x.consumed != o.consumed)
		return "where the message ends";
	return NULL;
}

static void check_one(const struct msg *m, struct tally *t, const char *what)
{
	static char buf[MSG_MAX];
	size_t len = render(m, buf);
	const char *diff = compare(buf, len, t);

	if (diff) {
		static struct view x, o;

		xmesh_view(buf, len, &x);
		oracle_view(buf, len, &o);
		cr_assert_fail("%s: %s (xmesh %d %s, libhttp-parser %d %s) in:\n%.*s", what, diff, x.outcome,
			       x.why ? x.why : "", o.outcome, o.why ? o.why : "", (int)len, buf);
	}
}

Test(h1_differential, seeds_and_mutations)
{
	struct tally t = { 0 };
	struct msg m;
	size_t s;
	int k, k2;
	uint32_t v;
	char what[64];

	rng_state = 0x9e3779b9;
	for (s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		from_seed(&m, &seeds[s]);
		snprintf(what, sizeof(what), "seed %zu", s);
		check_one(&m, &t, what);
		/* Every kind of mutation with a range of parameters ... */
		for (k = 0; k < N_KINDS; k++)
			for (v = 0; v < 24; v++) {
				from_seed(&m, &seeds[s]);
				mutate(&m, k, v * 7 + (uint32_t)k);
				snprintf(what, sizeof(what), "seed %zu, mutation %d/%u", s, k, v);
				check_one(&m, &t, what);
			}
		/* ... and pairs of them. */
		for (v = 0; v < 200; v++) {
			from_seed(&m, &seeds[s]);
			k = (int)(rng() % N_KINDS);
			k2 = (int)(rng() % N_KINDS);
			mutate(&m, k, rng());
			mutate(&m, k2, rng());
			snprintf(what, sizeof(what), "seed %zu, mutations %d+%d (pair %u)", s, k, k2, v);
			check_one(&m, &t, what);
		}
	}
	cr_log_info("differential: %u requests; both complete and equal %u, both waiting %u, both refused %u, "
		    "only xmesh refused %u, only libhttp-parser refused (unknown method) %u",
		    t.total, t.both, t.incomplete, t.both_refused, t.xmesh_only_refused, t.oracle_only_refused_method);
	/* The test must exercise both sides: plenty agreed on, plenty refused by xmesh alone. */
	cr_expect_gt(t.total, 3000);
	cr_expect_gt(t.both, 1000);
	cr_expect_gt(t.xmesh_only_refused, 300);
}
