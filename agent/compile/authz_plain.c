// SPDX-License-Identifier: Apache-2.0
/* AuthorizationPolicy for plaintext connections, compiled per local pod address (compile/authz_plain.h). */
#include "compile/authz_plain.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/log.h"
#include "metrics/authz_denied.h"

uint32_t authz_policy_id(const char *ns, const char *name)
{
	const char *parts[] = { ns, "/", name };
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < 3; i++)
		for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++) {
			h ^= *c;
			h *= 16777619u;
		}
	return h ? h : 1;
}

static size_t addr_len(uint8_t family)
{
	return family == XM_FAMILY_V4 ? 4 : 16;
}

static unsigned full_bits(uint8_t family)
{
	return family == XM_FAMILY_V4 ? 32 : 128;
}

/* The address bits past the prefix (and the bytes past an IPv4 address) cleared. */
static void addr_mask(struct xm_ip *ip, unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		if (i >= addr_len(ip->family) || bits <= i * 8)
			ip->bytes[i] = 0;
		else if (bits < i * 8 + 8)
			ip->bytes[i] &= (uint8_t)(0xff << (8 - (bits - i * 8)));
	}
}

/* The address after the last one of prefix (ip, bits); false past the end of the address space. */
static bool addr_after(const struct xm_ip *ip, unsigned bits, struct xm_ip *out)
{
	size_t len = addr_len(ip->family);

	*out = *ip;
	for (unsigned i = 0; i < len; i++) {
		if (bits <= i * 8)
			out->bytes[i] = 0xff;
		else if (bits < i * 8 + 8)
			out->bytes[i] |= (uint8_t)(0xff >> (bits - i * 8));
	}
	for (size_t i = len; i-- > 0;)
		if (++out->bytes[i])
			return true;
	return false;
}

/* A source CIDR of the policies applying to one pod address, and where it is the longest match. */
struct cidr {
	struct xm_ip ip; /* masked */
	uint8_t bits;
	bool live;	  /* some address has it as its longest match: it gets an entry */
	struct xm_ip rep; /* live: such an address */
};

static int cidr_cmp(const void *a, const void *b)
{
	const struct cidr *x = a, *y = b;

	if (x->bits != y->bits)
		return x->bits < y->bits ? -1 : 1;
	return memcmp(x->ip.bytes, y->ip.bytes, sizeof(x->ip.bytes));
}

static int port_cmp(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;

	return x < y ? -1 : x > y;
}

/* One local pod address: a client that may reach D from its own veth, with its identity. */
struct local {
	struct xm_ip ip;
	const struct xm_identity *id;
};

/* What is compiled for one local pod address D. */
struct pod_plan {
	const struct xm_workload *wl;
	struct xm_ip dst;
	uint16_t *ports; /* named ports, sorted, unique */
	size_t n_ports, cap_ports;
	struct cidr *cidrs; /* by length then address, unique; [0] is /0 */
	size_t n_cidrs, cap_cidrs;
	size_t *pod_cidr;		  /* per local pod of D's family (by index in locals): its longest live CIDR */
	struct xm_authz_plain_entry *buf; /* D's entries */
	size_t n_buf, cap_buf;
	bool any_deny;
	bool identity_matters; /* an applying policy names principals, namespaces or service accounts */
};

static int add_value(struct pod_plan *pl, enum xm_authz_attr attr, const struct xm_authz_match *m)
{
	if (attr == XM_AUTHZ_PRINCIPAL || attr == XM_AUTHZ_NAMESPACE || attr == XM_AUTHZ_SERVICE_ACCOUNT)
		pl->identity_matters = true;
	if (attr == XM_AUTHZ_DEST_PORT && m->kind == XM_AUTHZ_PORT && m->port) { /* port 0 is never dialed */
		if (XM_GROW(pl->ports, pl->cap_ports, pl->n_ports + 1))
			return -ENOMEM;
		pl->ports[pl->n_ports++] = m->port;
	} else if (attr == XM_AUTHZ_SOURCE_IP && m->kind == XM_AUTHZ_CIDR && m->ip.family == pl->dst.family) {
		struct cidr c = { .ip = m->ip, .bits = m->bits };

		addr_mask(&c.ip, c.bits);
		if (XM_GROW(pl->cidrs, pl->cap_cidrs, pl->n_cidrs + 1))
			return -ENOMEM;
		pl->cidrs[pl->n_cidrs++] = c;
	}
	return 0;
}

/* The named ports and source CIDRs of the policies applying to D (negated ones too: they split alike). */
static int collect_values(struct pod_plan *pl, const struct xm_authz_table *t, bool *applies)
{
	struct cidr all = { .ip = { .family = pl->dst.family } };

	*applies = false;
	if (XM_GROW(pl->cidrs, pl->cap_cidrs, 1))
		return -ENOMEM;
	pl->cidrs[pl->n_cidrs++] = all;
	for (size_t i = 0; i < t->n; i++) {
		const struct xm_authz_policy *p = &t->items[i];

		if (!authz_policy_applies(t, p, pl->wl->ns, pl->wl->labels, pl->wl->n_labels))
			continue;
		*applies = true;
		for (size_t r = 0; r < p->n_rules; r++)
			for (size_t c = 0; c < p->rules[r].n_clauses; c++) {
				const struct xm_authz_clause *cl = &p->rules[r].clauses[c];

				for (size_t a = 0; a < cl->n_alts; a++)
					for (size_t k = 0; k < cl->alts[a].n_conds; k++) {
						const struct xm_authz_cond *cd = &cl->alts[a].conds[k];

						for (size_t v = 0; v < cd->n_values; v++) {
							struct xm_authz_match once;

							if (!cd->match)
								authz_match_compile(cd->attr, cd->values[v], &once);
							if (add_value(pl, cd->attr, cd->match ? &cd->match[v] : &once))
								return -ENOMEM;
						}
					}
			}
	}
	if (pl->n_ports) /* ports is NULL until one is named */
		qsort(pl->ports, pl->n_ports, sizeof(*pl->ports), port_cmp);
	qsort(pl->cidrs, pl->n_cidrs, sizeof(*pl->cidrs), cidr_cmp);
	size_t n = 0;

	for (size_t i = 0; i < pl->n_ports; i++)
		if (!n || pl->ports[n - 1] != pl->ports[i])
			pl->ports[n++] = pl->ports[i];
	pl->n_ports = n;
	n = 0;
	for (size_t i = 0; i < pl->n_cidrs; i++)
		if (!n || cidr_cmp(&pl->cidrs[n - 1], &pl->cidrs[i]))
			pl->cidrs[n++] = pl->cidrs[i];
	pl->n_cidrs = n;
	return 0;
}

/* Whether ip is inside a CIDR longer than cidrs[i] (they are sorted by length: those after i). */
static bool in_longer(const struct pod_plan *pl, size_t i, const struct xm_ip *ip)
{
	for (size_t j = i + 1; j < pl->n_cidrs; j++)
		if (pl->cidrs[j].bits > pl->cidrs[i].bits &&
		    authz_cidr_contains(&pl->cidrs[j].ip, pl->cidrs[j].bits, ip))
			return true;
	return false;
}

/*
 * An address of cidrs[i] outside every longer CIDR: its first address, else the address just after one of
 * the longer CIDRs inside it (the smallest uncovered address is one of these). None: fully covered.
 */
static void find_reps(struct pod_plan *pl)
{
	for (size_t i = 0; i < pl->n_cidrs; i++) {
		struct cidr *c = &pl->cidrs[i];

		c->live = !in_longer(pl, i, &c->ip);
		c->rep = c->ip;
		for (size_t j = i + 1; j < pl->n_cidrs && !c->live; j++) {
			const struct cidr *d = &pl->cidrs[j];
			struct xm_ip after;

			if (d->bits > c->bits && authz_cidr_contains(&c->ip, c->bits, &d->ip) &&
			    addr_after(&d->ip, d->bits, &after) && authz_cidr_contains(&c->ip, c->bits, &after) &&
			    !in_longer(pl, i, &after)) {
				c->live = true;
				c->rep = after;
			}
		}
	}
}

/* The longest CIDR holding ip (live: ip is an address it is the longest match of). */
static size_t longest_cidr(const struct pod_plan *pl, const struct xm_ip *ip)
{
	for (size_t i = pl->n_cidrs; i-- > 0;)
		if (authz_cidr_contains(&pl->cidrs[i].ip, pl->cidrs[i].bits, ip))
			return i;
	return 0; /* the /0 */
}

static void judge(const struct xm_authz_table *t, const struct pod_plan *pl, const struct xm_ip *src, uint16_t port,
		  const char *peer_id, const char *trust_domain, uint8_t *deny, uint32_t *policy)
{
	struct xm_authz_request req = {
		.peer_id = peer_id, .trust_domain = trust_domain, .src = src, .dst = &pl->dst, .dport = port
	};
	struct xm_authz_verdict v;

	authz_evaluate(t, pl->wl->ns, pl->wl->labels, pl->wl->n_labels, &req, &v);
	*deny = !v.allowed;
	*policy = v.allowed ? 0 : v.policy ? authz_policy_id(v.policy->ns, v.policy->name) : XM_AUTHZ_POLICY_NO_ALLOW;
}

static struct xm_authz_plain_entry *entry_add(struct pod_plan *pl, uint16_t port, const struct xm_ip *src,
					      unsigned bits)
{
	struct xm_authz_plain_entry *e;
	size_t len = addr_len(pl->dst.family);

	if (XM_GROW(pl->buf, pl->cap_buf, pl->n_buf + 1))
		return NULL;
	e = &pl->buf[pl->n_buf++];
	memset(e, 0, sizeof(*e));
	e->key.prefixlen = XM_AUTHZ_PLAIN_FIXED_BITS + bits;
	e->key.family = pl->dst.family;
	e->key.port = port;
	memcpy(e->key.dst.bytes, pl->dst.bytes, len);
	memcpy(e->key.src.bytes, src->bytes, len);
	return e;
}

/* A local pod's verdicts, kept for the next pod of the same CIDR and principal. */
struct seen_verdict {
	size_t cidr;
	const char *principal;
	struct xm_authz_plain_verdict v;
};

static bool known_verdict(const struct seen_verdict *seen, size_t n, size_t cidr, const char *principal,
			  struct xm_authz_plain_verdict *v)
{
	for (size_t i = 0; i < n; i++)
		if (seen[i].cidr == cidr && !strcmp(seen[i].principal, principal)) {
			v->deny_local = seen[i].v.deny_local;
			v->policy_local = seen[i].v.policy_local;
			return true;
		}
	return false;
}

/*
 * The entries of one port class (port: the key's, eval_port: the port evaluated): one per live CIDR, and one
 * per local pod whose identity or address changes the answer of the CIDR entry that would hold it.
 */
static int class_build(const struct xm_authz_table *t, const struct local *locals, size_t n_locals, const char *td,
		       struct pod_plan *pl, uint16_t port, uint16_t eval_port)
{
	size_t first = pl->n_buf, n_seen = 0;
	size_t *at = calloc(pl->n_cidrs, sizeof(*at)); /* each live CIDR's entry, by offset from first */
	struct seen_verdict *seen = calloc(n_locals ? n_locals : 1, sizeof(*seen));

	if (!at || !seen) {
		free(at);
		free(seen);
		return -ENOMEM;
	}
	for (size_t i = 0; i < pl->n_cidrs; i++) {
		struct xm_authz_plain_entry *e;

		if (!pl->cidrs[i].live)
			continue;
		e = entry_add(pl, port, &pl->cidrs[i].ip, pl->cidrs[i].bits);
		if (!e)
			goto nomem;
		at[i] = pl->n_buf - 1 - first;
		judge(t, pl, &pl->cidrs[i].rep, eval_port, NULL, td, &e->val.deny, &e->val.policy);
		e->val.deny_local = e->val.deny;
		e->val.policy_local = e->val.policy;
		pl->any_deny |= e->val.deny;
	}
	for (size_t k = 0; k < n_locals; k++) {
		const struct local *p = &locals[k];
		size_t r = pl->pod_cidr[k];
		struct xm_authz_plain_verdict v = { 0 };
		struct xm_authz_plain_entry *c, *e;

		if (p->ip.family != pl->dst.family)
			continue;
		/*
		 * Without an identity the client's address counts only through the CIDRs holding it: its CIDR
		 * entry's answer. With one, the answer depends on (that CIDR, the principal): asked once per pair.
		 */
		c = &pl->buf[first + at[r]];
		v.deny = c->val.deny;
		v.policy = c->val.policy;
		v.deny_local = v.deny;
		v.policy_local = v.policy;
		if (pl->identity_matters && !known_verdict(seen, n_seen, r, p->id->principal, &v)) {
			judge(t, pl, &p->ip, eval_port, p->id->principal, td, &v.deny_local, &v.policy_local);
			seen[n_seen++] = (struct seen_verdict){ .cidr = r, .principal = p->id->principal, .v = v };
		}
		pl->any_deny |= v.deny | v.deny_local;
		if (pl->cidrs[r].bits == full_bits(p->ip.family)) {
			c->val = v; /* the CIDR is this pod's address: one entry, with what its identity changes */
			continue;
		}
		if (!memcmp(&c->val, &v, sizeof(v)))
			continue; /* the CIDR entry answers alike */
		e = entry_add(pl, port, &p->ip, full_bits(p->ip.family));
		if (!e)
			goto nomem;
		e->val = v;
	}
	free(seen);
	free(at);
	return 0;
nomem:
	free(at);
	free(seen);
	return -ENOMEM;
}

/* Whether the entries [a, a + n) and [b, b + n) differ only by port. */
static bool classes_equal(const struct pod_plan *pl, size_t a, size_t b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct xm_authz_plain_entry *x = &pl->buf[a + i], *y = &pl->buf[b + i];

		if (x->key.prefixlen != y->key.prefixlen || memcmp(&x->key.src, &y->key.src, sizeof(x->key.src)) ||
		    memcmp(&x->val, &y->val, sizeof(x->val)))
			return false;
	}
	return true;
}

/* D's entries in pl->buf (none when nothing applies to D or nothing can be denied). */
static int pod_build(const struct xm_authz_table *t, const struct local *locals, size_t n_locals, const char *td,
		     struct pod_plan *pl)
{
	uint16_t other = 1; /* the smallest port no policy names: stands for port class 0 */
	size_t class0 = 0, n0 = 0;
	bool applies;
	int err;

	err = collect_values(pl, t, &applies);
	if (err || !applies)
		return err;
	find_reps(pl);
	for (size_t k = 0; k < n_locals; k++)
		if (locals[k].ip.family == pl->dst.family)
			pl->pod_cidr[k] = longest_cidr(pl, &locals[k].ip);
	for (size_t i = 0; i < pl->n_ports && pl->ports[i] <= other; i++)
		if (pl->ports[i] == other)
			other++;
	if (other) { /* 0 after 65535: every port is named, no class 0 */
		err = class_build(t, locals, n_locals, td, pl, 0, other);
		if (err)
			return err;
		n0 = pl->n_buf;
	}
	for (size_t i = 0; i < pl->n_ports; i++) {
		size_t first = pl->n_buf;

		err = class_build(t, locals, n_locals, td, pl, pl->ports[i], pl->ports[i]);
		if (err)
			return err;
		if (other && pl->n_buf - first == n0 && classes_equal(pl, class0, first, n0))
			pl->n_buf = first; /* port 0's entries answer for it */
	}
	if (!pl->any_deny)
		pl->n_buf = 0;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct xm_authz_plain_entry *)a)->key, &((const struct xm_authz_plain_entry *)b)->key,
		      sizeof(struct xm_authz_plain_key));
}

/* The addresses of the pods of node, each once (ids are sorted by family and address). */
static int locals_of(const struct xm_identities *ids, const char *node, struct local **out, size_t *n_out)
{
	struct local *v = calloc(ids->n ? ids->n : 1, sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; node && i < ids->n; i++) {
		const struct xm_identity *id = &ids->items[i];
		struct local *l = &v[n];

		if (!id->wl || strcmp(id->wl->node, node))
			continue;
		memset(l, 0, sizeof(*l));
		l->ip.family = id->family;
		memcpy(l->ip.bytes, id->addr.bytes, addr_len(id->family));
		l->id = id;
		if (n && !memcmp(&v[n - 1].ip, &l->ip, sizeof(l->ip)))
			continue; /* two pods claim one address: the first answers, as identities_find would */
		n++;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int authz_plain_build(const struct xm_identities *ids, const struct xm_authz_table *authz, const char *node,
		      const char *trust_domain, struct xm_authz_plain_table *out)
{
	struct xm_authz_plain_table t = { 0 };
	struct pod_plan pl = { 0 };
	struct local *locals = NULL;
	size_t n_locals = 0, cap = 0, needed = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (!authz->n)
		return 0;
	err = locals_of(ids, node, &locals, &n_locals);
	if (err)
		return err;
	pl.pod_cidr = calloc(n_locals ? n_locals : 1, sizeof(*pl.pod_cidr));
	if (!pl.pod_cidr)
		err = -ENOMEM;
	for (size_t d = 0; d < n_locals && !err; d++) {
		pl.wl = locals[d].id->wl;
		pl.dst = locals[d].ip;
		pl.n_ports = pl.n_cidrs = pl.n_buf = 0;
		pl.any_deny = pl.identity_matters = false;
		err = pod_build(authz, locals, n_locals, trust_domain, &pl);
		if (err)
			break;
		needed += pl.n_buf;
		if (needed > XM_MAX_AUTHZ_PLAIN || !pl.n_buf)
			continue; /* counting on: the warning says how many it takes */
		if (XM_GROW(t.items, cap, t.n + pl.n_buf)) {
			err = -ENOMEM;
			break;
		}
		memcpy(&t.items[t.n], pl.buf, pl.n_buf * sizeof(*pl.buf));
		t.n += pl.n_buf;
	}
	free(pl.ports);
	free(pl.cidrs);
	free(pl.pod_cidr);
	free(pl.buf);
	free(locals);
	if (!err && needed > XM_MAX_AUTHZ_PLAIN) {
		log_warn(
		    "authz: plaintext AuthorizationPolicy needs %zu entries, the kernel table holds %d: keeping the "
		    "previous one",
		    needed, XM_MAX_AUTHZ_PLAIN);
		err = -E2BIG;
	}
	if (err) {
		authz_plain_free(&t);
		return err;
	}
	if (t.n)
		qsort(t.items, t.n, sizeof(*t.items), entry_cmp);
	for (size_t i = 0; i < t.n; i++) {
		unsigned bits = t.items[i].key.prefixlen - XM_AUTHZ_PLAIN_FIXED_BITS;

		t.src_bits[bits / 64] |= 1ull << (bits % 64);
	}
	*out = t;
	return 0;
}

void authz_plain_free(struct xm_authz_plain_table *t)
{
	free(t->items);
	memset(t, 0, sizeof(*t));
}

const struct xm_authz_plain_entry *authz_plain_find(const struct xm_authz_plain_table *t,
						    const struct xm_authz_plain_key *key)
{
	struct xm_authz_plain_entry probe = { .key = *key };

	return t->n ? bsearch(&probe, t->items, t->n, sizeof(*t->items), entry_cmp) : NULL;
}

/* The entry the trie matches for (family, pod, port, client): an exact find at each prefix length, longest first. */
static const struct xm_authz_plain_entry *plain_lpm(const struct xm_authz_plain_table *t, uint8_t family,
						    const union xm_addr *pod, uint16_t port,
						    const union xm_addr *client)
{
	size_t len = addr_len(family);
	struct xm_authz_plain_key k;

	memset(&k, 0, sizeof(k));
	k.family = family;
	k.port = port;
	memcpy(k.dst.bytes, pod->bytes, len);
	for (unsigned bits = full_bits(family) + 1; bits-- > 0;) {
		const struct xm_authz_plain_entry *e;

		if (!(t->src_bits[bits / 64] & (1ull << (bits % 64))))
			continue; /* no entry of any pod has a client prefix this long */

		memset(k.src.bytes, 0, sizeof(k.src.bytes));
		memcpy(k.src.bytes, client->bytes, len);
		for (unsigned i = 0; i < len; i++) /* the bits past the prefix cleared, as the trie ignores them */
			k.src.bytes[i] = bits <= i * 8 ? 0
					 : bits >= i * 8 + 8
					     ? k.src.bytes[i]
					     : (uint8_t)(k.src.bytes[i] & (0xff << (8 - (bits - i * 8))));
		k.prefixlen = XM_AUTHZ_PLAIN_FIXED_BITS + bits;
		e = authz_plain_find(t, &k);
		if (e)
			return e;
	}
	return NULL;
}

bool authz_plain_judge(const struct xm_authz_plain_table *t, uint8_t family, const union xm_addr *pod, uint16_t port,
		       const union xm_addr *client, bool from_local_pod, uint32_t *policy)
{
	const struct xm_authz_plain_entry *e;

	*policy = 0;
	if (!t->n || (family != XM_FAMILY_V4 && family != XM_FAMILY_V6))
		return false;
	e = plain_lpm(t, family, pod, port, client);
	if (!e && port)
		e = plain_lpm(t, family, pod, 0, client);
	if (!e || !(from_local_pod ? e->val.deny_local : e->val.deny))
		return false;
	*policy = from_local_pod ? e->val.policy_local : e->val.policy;
	return true;
}

const char *authz_plain_policy_name(const struct xm_authz_table *t, uint32_t id, char *buf, size_t len)
{
	if (id == XM_AUTHZ_POLICY_NO_ALLOW)
		return AUTHZ_DENIED_NO_ALLOW;
	for (size_t i = 0; i < t->n; i++) {
		const struct xm_authz_policy *p = &t->items[i];

		if (p->action == XM_AUTHZ_DENY && authz_policy_id(p->ns, p->name) == id) {
			snprintf(buf, len, "%s/%s", p->ns, p->name);
			return buf;
		}
	}
	return NULL;
}
