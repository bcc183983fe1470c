// SPDX-License-Identifier: Apache-2.0
/*
 * Workload identities as a module: opens the CA at start (plug-in files or the generated root), mints a
 * certificate for each identity of the pods on this node at every apply, renews them at half-life from the
 * 500 ms tick, answers `xmesh certs` and exports their expiry. Everything on the control loop; the proxies
 * take certificates from the store (identity/identity.h) without waiting on it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "identity/identity.h"
#include "metrics/registry.h"

#define MINT_RETRY_S 5

/* A local pod and its identity, as the last apply saw them. */
struct local_pod {
	char uri[XM_SPIFFE_MAX + 1];
	char pod[64 + XM_NAME_MAX + 1]; /* ns/name */
};

struct identity_mod {
	struct xm_ca *ca;
	struct xm_identity_store *store;
	char trust_domain[XM_TRUST_DOMAIN_MAX + 1];
	char node[XM_NAME_MAX]; /* --node: pods elsewhere get their certificates from their own node's agent */
	uint32_t ttl_s;
	struct local_pod *pods; /* sorted by uri */
	size_t n_pods;
	const char **uris; /* into pods, for identity_store_sync */
	int64_t retry_at;  /* after a failed mint: when to try again (0: none pending) */
	atomic_ullong minted, renewed, failed;
	/* Reloading --ca-dir (docs/mtls.md "Reloading the plug-in CA"). */
	char *ca_dir;	    /* NULL: the generated root, never reloaded */
	uint64_t ca_stamp;  /* ca_files_stamp of the files the CA in use was read from (or last refused) */
	uint64_t new_stamp; /* a change seen at the previous tick; loaded once a tick passes without another */
	struct xm_trust_bundle **retired; /* earlier CAs' bundles: snapshots still point at them */
	size_t n_retired;
	atomic_ullong reload_ok, reload_error;
};

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static void identity_mod_free(struct identity_mod *m)
{
	identity_store_free(m->store);
	ca_free(m->ca);
	for (size_t i = 0; i < m->n_retired; i++)
		bundle_put(m->retired[i]);
	free(m->retired);
	free(m->ca_dir);
	free(m->pods);
	free(m->uris);
	free(m);
}

static int identity_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct xm_ca_opts co = { .ca_dir = o->ca_dir, .state_dir = o->state_dir };
	struct identity_mod *m = calloc(1, sizeof(*m));
	char err[1024];

	*state = NULL;
	if (!m)
		return -ENOMEM;
	snprintf(m->trust_domain, sizeof(m->trust_domain), "%s",
		 o->trust_domain ? o->trust_domain : XM_DEFAULT_TRUST_DOMAIN);
	m->ttl_s = o->cert_ttl_s ? o->cert_ttl_s : XM_DEFAULT_CERT_TTL_S;
	snprintf(m->node, sizeof(m->node), "%s", o->node_name ? o->node_name : "");
	if (!m->node[0])
		log_warn("identity: no --node: no pod is known to be on this node, none gets a certificate");
	m->ca = ca_open(&co, wall_now(), err, sizeof(err));
	if (!m->ca) {
		log_error("identity: CA: %s", err);
		identity_mod_free(m);
		return -EINVAL;
	}
	m->store = identity_store_new();
	m->ca_dir = o->ca_dir ? strdup(o->ca_dir) : NULL;
	if (!m->store || (o->ca_dir && !m->ca_dir)) {
		identity_mod_free(m);
		return -ENOMEM;
	}
	identity_store_set_bundle(m->store, ca_bundle(m->ca));
	/* Read after the load: a change made while it read is seen again, and read again, at the first tick. */
	if (m->ca_dir)
		m->ca_stamp = m->new_stamp = ca_files_stamp(m->ca_dir);
	log_info("identity: CA from %s, %zu trusted root(s), first sha256 %s; trust domain %s, certificates for %u s",
		 ca_source(m->ca), bundle_n_roots(ca_bundle(m->ca)), bundle_root_fingerprint(ca_bundle(m->ca), 0),
		 m->trust_domain, m->ttl_s);
	*state = m;
	return 0;
}

static int pod_cmp(const void *a, const void *b)
{
	const struct local_pod *x = a, *y = b;
	int c = strcmp(x->uri, y->uri);

	return c ? c : strcmp(x->pod, y->pod);
}

static void sync_store(struct identity_mod *m, const char *why)
{
	struct xm_store_sync_result r;
	int err = identity_store_sync(m->store, m->ca, m->uris, m->n_pods, wall_now(), m->ttl_s, &r);

	if (err) {
		log_warn("identity: %s: %s; certificates unchanged", why, strerror(-err));
		return;
	}
	/* A pod whose first mint failed has no certificate to renew: the tick tries again a little later. */
	m->retry_at = r.failed ? wall_now() + MINT_RETRY_S : 0;
	atomic_fetch_add(&m->minted, r.minted);
	atomic_fetch_add(&m->renewed, r.renewed);
	atomic_fetch_add(&m->failed, r.failed);
	if (r.minted || r.renewed || r.dropped || r.failed)
		log_info("identity: %s: %zu certificate(s) minted, %zu renewed (%zu of another issuer), %zu dropped, "
			 "%zu failed",
			 why, r.minted, r.renewed, r.reissued, r.dropped, r.failed);
}

/* The pods on this node (spec.nodeName = --node) and their identities; the store follows them. */
static int identity_mod_apply(void *state, struct xm_snapshot *next)
{
	struct identity_mod *m = state;
	const struct xm_identities *ids = &next->identities;
	struct local_pod *pods;
	const char **uris;
	size_t n = 0;
	int rc = 0;

	next->certs = m->store;
	next->trust_bundle = ca_bundle(m->ca);
	next->trust_domain = m->trust_domain;
	pods = calloc(ids->n_workloads ? ids->n_workloads : 1, sizeof(*pods));
	uris = calloc(ids->n_workloads ? ids->n_workloads : 1, sizeof(*uris));
	if (!pods || !uris) {
		free(pods);
		free(uris);
		log_warn("identity: out of memory; certificates unchanged");
		return -ENOMEM;
	}
	for (size_t i = 0; i < ids->n_workloads; i++) {
		const struct xm_workload *w = &ids->workloads[i];
		struct local_pod *p = &pods[n];

		if (!m->node[0] || strcmp(w->node, m->node))
			continue;
		if (spiffe_format(p->uri, sizeof(p->uri), m->trust_domain, w->ns, w->service_account)) {
			log_warn("identity: pod %s/%s: service account \"%s\" makes no SPIFFE ID; no certificate",
				 w->ns, w->pod, w->service_account);
			rc = -EINVAL;
			continue;
		}
		snprintf(p->pod, sizeof(p->pod), "%s/%s", w->ns, w->pod);
		n++;
	}
	qsort(pods, n, sizeof(*pods), pod_cmp);
	for (size_t i = 0; i < n; i++)
		uris[i] = pods[i].uri;
	free(m->pods);
	free(m->uris);
	m->pods = pods;
	m->uris = uris;
	m->n_pods = n;
	sync_store(m, "config applied");
	return rc;
}

/*
 * The new files, checked as at start (ca_open); only a whole, valid set replaces the CA. Certificates of the
 * old issuer are minted again right away; the old CA's bundle stays referenced for the snapshots that still
 * point at it. The message of a refusal names the file and the reason, never key material.
 */
static void reload_ca(struct identity_mod *m)
{
	struct xm_ca_opts co = { .ca_dir = m->ca_dir };
	struct xm_trust_bundle **r;
	struct xm_ca *next, *old = m->ca;
	char err[1024];
	bool new_signer;

	next = ca_open(&co, wall_now(), err, sizeof(err));
	r = next ? realloc(m->retired, (m->n_retired + 1) * sizeof(*r)) : NULL;
	if (!r) {
		atomic_fetch_add(&m->reload_error, 1);
		log_error("identity: the CA files in %s changed but are not used, the CA stays as it was: %s",
			  m->ca_dir, next ? "out of memory" : err);
		ca_free(next);
		return;
	}
	m->retired = r;
	m->retired[m->n_retired++] = bundle_get(ca_bundle(old));
	new_signer = !ca_same_signer(old, next);
	m->ca = next;
	identity_store_set_bundle(m->store, ca_bundle(next));
	ca_free(old);
	atomic_fetch_add(&m->reload_ok, 1);
	log_info("identity: CA reloaded from %s: %s signing certificate, %zu trusted root(s), first sha256 %s",
		 m->ca_dir, new_signer ? "a new" : "the same", bundle_n_roots(ca_bundle(next)),
		 bundle_root_fingerprint(ca_bundle(next), 0));
	if (new_signer)
		sync_store(m, "CA reloaded");
}

/* A change of the files is loaded once it held still for a tick (500 ms): cp of four files is not atomic. */
static void watch_ca_dir(struct identity_mod *m)
{
	uint64_t stamp = ca_files_stamp(m->ca_dir);

	if (stamp == m->ca_stamp) {
		m->new_stamp = stamp;
		return;
	}
	if (stamp != m->new_stamp) {
		m->new_stamp = stamp;
		return;
	}
	m->ca_stamp = stamp; /* a refused set is not tried again until the files change again */
	reload_ca(m);
}

static void identity_mod_tick(void *state, const struct xm_snapshot *cur, uint64_t now_ms)
{
	struct identity_mod *m = state;
	int64_t now;

	(void)cur, (void)now_ms;
	if (m->ca_dir)
		watch_ca_dir(m);
	now = wall_now();
	if (now >= identity_store_next_renewal(m->store) || (m->retry_at && now >= m->retry_at))
		sync_store(m, "renewal");
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%lld", (long long)t);
}

/* "AB:CD:…" of a 32-byte CA id (ca_id, cert_issuer_id): the SHA-256 fingerprint of the signing certificate. */
static void fmt_id(const uint8_t *id, char buf[XM_FINGERPRINT_LEN])
{
	for (int i = 0; i < 32; i++)
		snprintf(buf + 3 * i, 4, "%02X%s", id[i], i < 31 ? ":" : "");
}

struct render_ctx {
	const struct identity_mod *m;
	struct strbuf *out;
	bool json, first;
};

/* The leaf and its chain as PEM, a JSON string: public, what a peer receives (openssl verify can check it). */
static void render_pem(struct strbuf *out, const struct xm_cert *c)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *str;
	long n;
	bool ok;

	ok = bio && PEM_write_bio_X509(bio, cert_leaf(c));
	for (int i = 0; ok && i < sk_X509_num(cert_chain(c)); i++)
		ok = PEM_write_bio_X509(bio, sk_X509_value(cert_chain(c), i));
	n = ok ? BIO_get_mem_data(bio, &data) : 0;
	str = n > 0 ? strndup(data, (size_t)n) : NULL;
	sb_json_str(out, str ? str : "");
	free(str);
	BIO_free(bio);
}

static void render_cert(void *ctx, const struct xm_cert *c)
{
	struct render_ctx *r = ctx;
	char nb[32], na[32], renew[32];
	char issuer[XM_FINGERPRINT_LEN];
	bool first_pod = true;

	fmt_id(cert_issuer_id(c), issuer);
	fmt_time(cert_not_before(c), nb, sizeof(nb));
	fmt_time(cert_not_after(c), na, sizeof(na));
	fmt_time(cert_renew_at(c), renew, sizeof(renew));
	if (r->json) {
		sb_puts(r->out, r->first ? "{\"identity\":" : ",{\"identity\":");
		sb_json_str(r->out, cert_spiffe(c));
		sb_printf(r->out,
			  ",\"serial\":\"%s\",\"issuer_sha256\":\"%s\",\"not_before\":\"%s\",\"not_after\":\"%s\","
			  "\"renew_at\":\"%s\",\"not_before_unix\":%lld,\"not_after_unix\":%lld,\"chain_length\":%d,"
			  "\"pods\":[",
			  cert_serial(c), issuer, nb, na, renew, (long long)cert_not_before(c),
			  (long long)cert_not_after(c), 1 + sk_X509_num(cert_chain(c)));
	} else {
		sb_printf(r->out, "%s\n  serial %s\n  valid %s .. %s, renewal at %s\n  pods:", cert_spiffe(c),
			  cert_serial(c), nb, na, renew);
	}
	r->first = false;
	for (size_t i = 0; i < r->m->n_pods; i++) {
		if (strcmp(r->m->pods[i].uri, cert_spiffe(c)))
			continue;
		if (r->json) {
			sb_puts(r->out, first_pod ? "" : ",");
			sb_json_str(r->out, r->m->pods[i].pod);
		} else {
			sb_printf(r->out, " %s", r->m->pods[i].pod);
		}
		first_pod = false;
	}
	if (r->json) {
		sb_puts(r->out, "],\"chain_pem\":");
		render_pem(r->out, c);
		sb_puts(r->out, "}");
	} else {
		sb_puts(r->out, "\n");
	}
}

/* `xmesh certs`: the trust bundle, then each identity. Never any key. */
static void render_certs(struct identity_mod *m, bool json, struct strbuf *out)
{
	const struct xm_trust_bundle *b = ca_bundle(m->ca);
	struct render_ctx r = { .m = m, .out = out, .json = json, .first = true };
	char ca_fp[XM_FINGERPRINT_LEN];

	fmt_id(ca_id(m->ca), ca_fp);
	if (json) {
		sb_puts(out, "{\"trust_domain\":");
		sb_json_str(out, m->trust_domain);
		sb_puts(out, ",\"ca\":");
		sb_json_str(out, ca_source(m->ca));
		sb_printf(out, ",\"ca_sha256\":\"%s\",\"ca_reloads\":%llu,\"cert_ttl_seconds\":%u,\"roots\":[", ca_fp,
			  atomic_load(&m->reload_ok), m->ttl_s);
	} else {
		sb_printf(out,
			  "trust domain %s, CA: %s (signing certificate sha256 %s), certificates for %u s\n"
			  "trust bundle:\n",
			  m->trust_domain, ca_source(m->ca), ca_fp, m->ttl_s);
	}
	for (size_t i = 0; i < bundle_n_roots(b); i++) {
		X509 *x = bundle_root(b, i);
		char subject[256], na[32];
		struct tm tm;

		X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
			fmt_time((int64_t)timegm(&tm), na, sizeof(na));
		else
			snprintf(na, sizeof(na), "?");
		if (json) {
			sb_puts(out, i ? ",{\"sha256\":" : "{\"sha256\":");
			sb_json_str(out, bundle_root_fingerprint(b, i));
			sb_puts(out, ",\"subject\":");
			sb_json_str(out, subject);
			sb_printf(out, ",\"not_after\":\"%s\"}", na);
		} else {
			sb_printf(out, "  root %s, until %s, sha256 %s\n", subject, na, bundle_root_fingerprint(b, i));
		}
	}
	if (json)
		sb_puts(out, "],\"identities\":[");
	else
		sb_printf(out, "identities on this node: %zu\n", identity_store_count(m->store));
	identity_store_each(m->store, render_cert, &r);
	if (json)
		sb_puts(out, "]}\n");
}

static bool identity_mod_admin(void *state, const char *command, struct strbuf *out)
{
	if (!strcmp(command, "certs")) {
		render_certs(state, false, out);
		return true;
	}
	if (!strcmp(command, "certs json")) {
		render_certs(state, true, out);
		return true;
	}
	return false;
}

static void identity_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	struct identity_mod *m = state;
	size_t n = identity_store_count(m->store);

	(void)cur;
	if (json) {
		sb_printf(out, ",\"identity\":{\"certificates\":%zu,\"trust_domain\":", n);
		sb_json_str(out, m->trust_domain);
		sb_puts(out, "}");
	} else {
		sb_printf(out, "identity: %zu workload certificate(s), trust domain %s (xmesh certs)\n", n,
			  m->trust_domain);
	}
}

struct collect_ctx {
	struct xm_scrape_family *expiry;
};

static void collect_cert(void *ctx, const struct xm_cert *c)
{
	static const char *const names[1] = { "identity" };
	struct collect_ctx *cc = ctx;
	const char *values[1] = { cert_spiffe(c) };

	scrape_double(cc->expiry, names, values, 1, (double)cert_not_after(c));
}

/* Metrics thread: the store's table and the counters are safe to read from here. */
static void identity_mod_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	static const char *const reason[1] = { "reason" }, *const kind[1] = { "kind" };
	struct identity_mod *m = state;
	struct collect_ctx cc;
	struct xm_scrape_family *f;

	(void)cur;
	cc.expiry = scrape_family(sc, "xmesh_cert_expiry_timestamp_seconds", "gauge",
				  "When each workload certificate this node holds expires (Unix seconds).");
	identity_store_each(m->store, collect_cert, &cc);
	f = scrape_family(sc, "xmesh_cert_verify_failures_total", "counter", "Peer certificates refused, by reason.");
	for (int r = XM_VERIFY_OK + 1; r < XM_VERIFY_N_REASONS; r++) {
		const char *v[1] = { verify_reason_name((enum xm_verify_reason)r) };

		scrape_u64(f, reason, v, 1, verify_failures((enum xm_verify_reason)r));
	}
	f = scrape_family(sc, "xmesh_certs_issued_total", "counter",
			  "Workload certificates minted by this node's CA, by kind (new, renewal, failed).");
	{
		const char *nv[1] = { "new" }, *rv[1] = { "renewal" }, *fv[1] = { "failed" };

		scrape_u64(f, kind, nv, 1, atomic_load(&m->minted));
		scrape_u64(f, kind, rv, 1, atomic_load(&m->renewed));
		scrape_u64(f, kind, fv, 1, atomic_load(&m->failed));
	}
	f = scrape_family(sc, "xmesh_ca_reload_total", "counter",
			  "Changes of the --ca-dir files, by result: ok (the CA switched) or error (refused, the "
			  "previous CA stays).");
	{
		static const char *const result[1] = { "result" };
		const char *ok[1] = { "ok" }, *bad[1] = { "error" };

		scrape_u64(f, result, ok, 1, atomic_load(&m->reload_ok));
		scrape_u64(f, result, bad, 1, atomic_load(&m->reload_error));
	}
}

static void identity_mod_close(void *state)
{
	identity_mod_free(state);
}

const struct xm_module xm_module_identity = {
	.name = "identity",
	.init = identity_mod_init,
	.apply = identity_mod_apply,
	.tick = identity_mod_tick,
	.status = identity_mod_status,
	.collect = identity_mod_collect,
	.admin = identity_mod_admin,
	.close = identity_mod_close,
};
