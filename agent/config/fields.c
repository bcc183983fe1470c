/* SPDX-License-Identifier: Apache-2.0 */
/* Typed field getters over the YAML tree, with Kubernetes' typing rules and name syntax. */
#include "config/fields.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/diag.h"

struct xm_loc obj_loc_of(const struct obj_ctx *c, const struct ynode *n)
{
	struct xm_loc loc = c->loc;

	if (n) {
		loc.file = c->file;
		loc.line = n->line;
		loc.col = n->col;
	}
	return loc;
}

/* One diagnostic at `at`, prefixed with the object (and the sub-object being read, if any). */
static void __attribute__((format(printf, 4, 0)))
obj_diag(struct obj_ctx *c, const struct ynode *at, bool warning, const char *fmt, va_list ap)
{
	struct xm_loc loc = obj_loc_of(c, at);
	char msg[sizeof(((struct xm_diag *)0)->msg)];
	int (*add)(struct xm_diags *, const struct xm_loc *, const char *, ...) = warning ? diags_warn : diags_add;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (c->sub[0])
		add(c->diags, &loc, "%s: %s: %s", c->what, c->sub, msg);
	else
		add(c->diags, &loc, "%s: %s", c->what, msg);
}

void obj_error(struct obj_ctx *c, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	obj_diag(c, at, false, fmt, ap);
	va_end(ap);
	(*c->n_errors)++;
}

void obj_warn(struct obj_ctx *c, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	obj_diag(c, at, true, fmt, ap);
	va_end(ap);
}

const char *quoted(char buf[QUOTE_BUF], const char *s)
{
	return diag_quote(buf, QUOTE_BUF, s, 64);
}

const char *field_name(char *buf, size_t size, const char *prefix, const char *key)
{
	if (prefix && prefix[0])
		snprintf(buf, size, "%s.%s", prefix, key);
	else
		snprintf(buf, size, "%s", key);
	return buf;
}

static void type_error(struct obj_ctx *c, const struct ynode *n, const char *field, const char *expected)
{
	char got[QUOTE_BUF + 16];

	obj_error(c, n, "%s: expected %s, got %s", field, expected, ynode_describe(n, got, sizeof(got)));
}

const struct ynode *map_value(struct obj_ctx *c, const struct ynode *map, const char *key)
{
	const struct ynode *dup = NULL;
	const struct ynode *v = ymap_get(map, key, &dup);
	char q[QUOTE_BUF];

	if (dup)
		obj_error(c, dup, "duplicate key %s (the first one is used)", quoted(q, key));
	return ynode_is_null(v) ? NULL : v;
}

int node_str(struct obj_ctx *c, const struct ynode *n, const char *field, char *buf, size_t size)
{
	buf[0] = '\0';
	if (ynode_is_null(n))
		return FIELD_ABSENT;
	if (n->kind != YNODE_SCALAR) {
		type_error(c, n, field, "a string");
		return FIELD_ERR;
	}
	if (strlen(n->str) != n->len) {
		obj_error(c, n, "%s contains a NUL character", field);
		return FIELD_ERR;
	}
	if (n->len >= size) {
		/* Keep a truncated copy so later messages can still name the element. */
		memcpy(buf, n->str, size - 1);
		buf[size - 1] = '\0';
		obj_error(c, n, "%s is too long (%zu characters, at most %zu)", field, n->len, size - 1);
		return FIELD_ERR;
	}
	memcpy(buf, n->str, n->len + 1);
	return FIELD_SET;
}

int node_int(struct obj_ctx *c, const struct ynode *n, const char *field, long long min, long long max, long long *out)
{
	const char *s;
	const char *digits;
	char q[QUOTE_BUF];
	long long v;
	char *end;

	if (ynode_is_null(n))
		return FIELD_ABSENT;
	if (n->kind != YNODE_SCALAR || !n->plain) {
		type_error(c, n, field, "an integer");
		return FIELD_ERR;
	}
	s = n->str;
	digits = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
	if (!isdigit((unsigned char)digits[0]) || strspn(digits, "0123456789") != strlen(digits)) {
		type_error(c, n, field, "an integer");
		return FIELD_ERR;
	}
	if (digits[0] == '0' && digits[1]) {
		/* YAML 1.1, which kubectl uses, reads 0755 as octal: refuse to guess. */
		obj_error(c, n, "%s %s has a leading zero (YAML 1.1 reads it as octal)", field, quoted(q, s));
		return FIELD_ERR;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || v < min || v > max) {
		/* s is only a sign and digits here: safe to print as is. */
		obj_error(c, n, "%s %.32s out of range %lld-%lld", field, s, min, max);
		return FIELD_ERR;
	}
	*out = v;
	return FIELD_SET;
}

int node_ip(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_ip *ip)
{
	char buf[64];
	char q[QUOTE_BUF];
	int r = node_str(c, n, field, buf, sizeof(buf));

	memset(ip, 0, sizeof(*ip));
	if (r != FIELD_SET)
		return r;
	if (inet_pton(AF_INET, buf, ip->bytes) == 1) {
		ip->family = 4;
		return FIELD_SET;
	}
	if (inet_pton(AF_INET6, buf, ip->bytes) == 1) {
		ip->family = 6;
		return FIELD_SET;
	}
	obj_error(c, n, "%s %s is not a valid IP address", field, quoted(q, n->str));
	return FIELD_ERR;
}

int get_str(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, char *buf, size_t size)
{
	return node_str(c, map_value(c, map, key), field ? field : key, buf, size);
}

int get_int(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, long long min,
	    long long max, long long *out)
{
	return node_int(c, map_value(c, map, key), field ? field : key, min, max, out);
}

int get_bool(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, bool *out)
{
	/* YAML 1.1 booleans, as kubectl's YAML reader accepts them. */
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N" };
	const struct ynode *n = map_value(c, map, key);

	if (!n)
		return FIELD_ABSENT;
	if (n->kind == YNODE_SCALAR && n->plain) {
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (strcmp(n->str, yes[i]) == 0) {
				*out = true;
				return FIELD_SET;
			}
			if (strcmp(n->str, no[i]) == 0) {
				*out = false;
				return FIELD_SET;
			}
		}
	}
	type_error(c, n, field ? field : key, "true or false");
	return FIELD_ERR;
}

int get_duration(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, uint64_t min_ms,
		 uint64_t *ms)
{
	const struct ynode *n = map_value(c, map, key);
	char buf[64];
	char q[QUOTE_BUF];
	int r;

	field = field ? field : key;
	r = node_str(c, n, field, buf, sizeof(buf));
	if (r != FIELD_SET)
		return r;
	if (config_parse_duration_ms(buf, ms) < 0) {
		obj_error(c, n, "%s %s is not a valid duration (like 10s, 500ms, 1m, 1.5s)", field, quoted(q, buf));
		return FIELD_ERR;
	}
	if (*ms < min_ms) {
		obj_error(c, n, "%s %s is shorter than %llums", field, quoted(q, buf), (unsigned long long)min_ms);
		return FIELD_ERR;
	}
	return FIELD_SET;
}

int get_enum(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, const char *const *names,
	     size_t n, size_t *idx)
{
	const struct ynode *node = map_value(c, map, key);
	char allowed[256] = "";
	char q[QUOTE_BUF];
	char buf[64];
	size_t used = 0;
	int r;

	field = field ? field : key;
	r = node_str(c, node, field, buf, sizeof(buf));
	if (r == FIELD_ABSENT)
		return r;
	for (size_t i = 0; r == FIELD_SET && i < n; i++) {
		if (strcmp(buf, names[i]) == 0) {
			*idx = i;
			return FIELD_SET;
		}
	}
	for (size_t i = 0; i < n && used < sizeof(allowed); i++)
		used += (size_t)snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "", names[i]);
	if (r == FIELD_SET)
		obj_error(c, node, "%s %s is not one of %s", field, quoted(q, node->str), allowed);
	return FIELD_ERR;
}

int get_protocol(struct obj_ctx *c, const struct ynode *map, const char *field, uint8_t *proto)
{
	static const char *const names[] = { "TCP", "UDP", "SCTP" };
	static const uint8_t numbers[] = { 6, 17, 132 };
	size_t idx = 0;
	int r = get_enum(c, map, "protocol", field, names, 3, &idx);

	*proto = numbers[r == FIELD_SET ? idx : 0];
	return r;
}

const struct ynode *get_map(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field)
{
	const struct ynode *n = map_value(c, map, key);

	if (n && n->kind != YNODE_MAP) {
		type_error(c, n, field ? field : key, "a mapping");
		return NULL;
	}
	return n;
}

const struct ynode *get_seq(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field)
{
	const struct ynode *n = map_value(c, map, key);

	if (n && n->kind != YNODE_SEQ) {
		type_error(c, n, field ? field : key, "a sequence");
		return NULL;
	}
	return n;
}

int get_labels(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, struct xm_label **labels,
	       size_t *n)
{
	const struct ynode *m = map_value(c, map, key);
	char name[XM_LABEL_MAX + 64];
	char q[QUOTE_BUF];
	int r = FIELD_ABSENT;

	field = field ? field : key;
	if (!m)
		return FIELD_ABSENT;
	if (m->kind != YNODE_MAP) {
		type_error(c, m, field, "a mapping");
		return FIELD_ERR;
	}
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct ynode *k = m->kids[i];
		struct xm_label l = { 0 };

		int kr = node_str(c, k, field, l.key, sizeof(l.key));

		if (kr != FIELD_SET || !l.key[0]) {
			if (kr != FIELD_ERR)
				obj_error(c, k, "%s: empty key", field);
			r = FIELD_ERR;
			continue;
		}
		snprintf(name, sizeof(name), "%s[%s]", field, quoted(q, l.key));
		/* A null value is the empty string, as in Kubernetes. */
		if (node_str(c, m->kids[i + 1], name, l.value, sizeof(l.value)) == FIELD_ERR) {
			r = FIELD_ERR;
			continue;
		}
		for (size_t j = 0; j < *n; j++) {
			if (strcmp((*labels)[j].key, l.key) == 0) {
				obj_error(c, k, "duplicate key %s (the first one is used)", quoted(q, l.key));
				goto next;
			}
		}
		struct xm_label *slot = array_push(labels, n, sizeof(**labels));

		if (!slot) {
			obj_error(c, k, "%s", "out of memory");
			return FIELD_ERR;
		}
		*slot = l;
		if (r == FIELD_ABSENT)
			r = FIELD_SET;
	next:;
	}
	return r;
}

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

bool is_dns1123_label(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool is_dns1035_label(const char *s)
{
	return is_dns1123_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

bool is_dns1123_subdomain(const char *s)
{
	size_t len = strlen(s);
	const char *p = s;

	if (len == 0 || len > 253)
		return false;
	while (*p) {
		size_t n = strcspn(p, ".");
		char part[64];

		if (n == 0 || n > 63)
			return false;
		memcpy(part, p, n);
		part[n] = '\0';
		if (!is_dns1123_label(part))
			return false;
		p += n;
		if (*p == '.' && !*++p)
			return false;
	}
	return true;
}

bool is_iana_svc_name(const char *s)
{
	size_t len = strlen(s);
	bool letter = false;

	if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-' || strstr(s, "--"))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] >= 'a' && s[i] <= 'z')
			letter = true;
		else if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return false;
	}
	return letter;
}

void *array_push(void *arr_ptr, size_t *n, size_t elem_size)
{
	void **arr = arr_ptr;
	char *elem;

	/* Capacity 4, then doubled whenever n reaches a power of two from 4 on. */
	if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
		size_t cap = *n ? *n * 2 : 4;
		void *grown;

		if (cap > SIZE_MAX / elem_size)
			return NULL;
		grown = realloc(*arr, cap * elem_size);
		if (!grown)
			return NULL;
		*arr = grown;
	}
	elem = (char *)*arr + *n * elem_size;
	memset(elem, 0, elem_size);
	(*n)++;
	return elem;
}
