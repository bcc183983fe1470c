// SPDX-License-Identifier: Apache-2.0
/*
 * Workload identities (agent/identity): SPIFFE parsing, the generated root and the plug-in CA, minting and
 * the verification of peers with each refusal's reason, several roots, renewal with an injected clock.
 * The test's own CAs and odd leaves are made here with OpenSSL's APIs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "identity/identity.h"

#define NOW ((int64_t)1800000000) /* 2027-01-15: an injected clock */
#define TD  "cluster.local"

/* ---------------------------------------------------------------------------------------------------- */
/* SPIFFE IDs */

struct spiffe_case {
	const char *in;
	bool ok;
	const char *td, *ns, *sa;
};

Test(identity, spiffe_parse_table)
{
	static const struct spiffe_case cases[] = {
		{ "spiffe://cluster.local/ns/default/sa/default", true, "cluster.local", "default", "default" },
		{ "spiffe://example.org/ns/a-b/sa/c.d_e", true, "example.org", "a-b", "c.d_e" },
		{ "spiffe://td/some/other/Path", true, "td", "", "" },
		{ "spiffe://td/ns/x/sa/y/z", true, "td", "", "" },
		{ "spiffe://td/x", true, "td", "", "" },
		{ "spiffe://td/.../x", true, "td", "", "" },
		{ "spiffe://td", false, NULL, NULL, NULL },
		{ "spiffe://td/", false, NULL, NULL, NULL },
		{ "spiffe:///ns/a/sa/b", false, NULL, NULL, NULL },
		{ "SPIFFE://td/ns/a/sa/b", false, NULL, NULL, NULL },
		{ "https://td/ns/a/sa/b", false, NULL, NULL, NULL },
		{ "spiffe:/td/ns/a", false, NULL, NULL, NULL },
		{ "spiffe://TD/ns/a/sa/b", false, NULL, NULL, NULL },
		{ "spiffe://td:443/ns/a/sa/b", false, NULL, NULL, NULL },
		{ "spiffe://user@td/ns/a", false, NULL, NULL, NULL },
		{ "spiffe://td/ns//sa/b", false, NULL, NULL, NULL },
		{ "spiffe://td/ns/a/sa/b/", false, NULL, NULL, NULL },
		{ "spiffe://td/./x", false, NULL, NULL, NULL },
		{ "spiffe://td/../x", false, NULL, NULL, NULL },
		{ "spiffe://td/x/..", false, NULL, NULL, NULL },
		{ "spiffe://td/x/.", false, NULL, NULL, NULL },
		{ "spiffe://td/ns/a%2f/sa/b", false, NULL, NULL, NULL },
		{ "spiffe://td/ns/a/sa/b?x=1", false, NULL, NULL, NULL },
		{ "spiffe://td/ns/a/sa/b#f", false, NULL, NULL, NULL },
		{ "spiffe://td/ns/a b/sa/b", false, NULL, NULL, NULL },
		{ "spiffe://t*d/x", false, NULL, NULL, NULL },
		{ "", false, NULL, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct spiffe_case *c = &cases[i];
		struct xm_spiffe_id id;
		const char *why = NULL;
		int r = spiffe_parse(c->in, strlen(c->in), &id, &why);

		cr_expect_eq(r == 0, c->ok, "%s: got %d (%s)", c->in, r, why ? why : "ok");
		if (r || !c->ok)
			continue;
		cr_expect_str_eq(id.uri, c->in);
		cr_expect_str_eq(id.trust_domain, c->td, "%s", c->in);
		cr_expect_str_eq(id.ns, c->ns, "%s", c->in);
		cr_expect_str_eq(id.sa, c->sa, "%s", c->in);
	}
}

Test(identity, spiffe_parse_limits)
{
	char buf[XM_SPIFFE_MAX + 16], td[300];
	struct xm_spiffe_id id;

	/* A NUL inside the length is a bad character, not an end. */
	cr_expect_eq(spiffe_parse("spiffe://td/a\0b", 15, &id, NULL), -EINVAL);
	memset(td, 'a', 256);
	td[256] = '\0';
	snprintf(buf, sizeof(buf), "spiffe://%s/x", td);
	cr_expect_eq(spiffe_parse(buf, strlen(buf), &id, NULL), -EINVAL, "256-byte trust domain");
	td[255] = '\0';
	snprintf(buf, sizeof(buf), "spiffe://%s/x", td);
	cr_expect_eq(spiffe_parse(buf, strlen(buf), &id, NULL), 0, "255-byte trust domain");
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "spiffe://td/", 12);
	cr_expect_eq(spiffe_parse(buf, XM_SPIFFE_MAX, &id, NULL), 0);
	cr_expect_eq(spiffe_parse(buf, XM_SPIFFE_MAX + 1, &id, NULL), -EINVAL);
}

Test(identity, spiffe_format)
{
	char buf[256];

	cr_expect_eq(spiffe_format(buf, sizeof(buf), TD, "shop", "reviews"), 0);
	cr_expect_str_eq(buf, "spiffe://cluster.local/ns/shop/sa/reviews");
	cr_expect_eq(spiffe_format(buf, sizeof(buf), TD, "shop", ""), 0);
	cr_expect_str_eq(buf, "spiffe://cluster.local/ns/shop/sa/default");
	cr_expect_eq(spiffe_format(buf, sizeof(buf), "Bad", "a", "b"), -EINVAL);
	cr_expect_eq(spiffe_format(buf, sizeof(buf), TD, "a/b", "c"), -EINVAL);
	cr_expect_eq(spiffe_format(buf, 20, TD, "a", "b"), -ENAMETOOLONG);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Helpers: directories, CAs and leaves made by the test */

static char tmpdir[256];

static void tmp_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/xmesh-identity-test.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
	cr_assert_not_null(e, "extension %d %s", nid, v);
	cr_assert(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer/ikey (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, const char *cn, bool ca, int64_t nb, int64_t na,
		       const char *san)
{
	X509 *x = X509_new();
	static long serial = 1000;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb);
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
	if (cn)
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					   -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509_set_pubkey(x, key);
	if (ca) {
		add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
	}
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (issuer)
		add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	if (san)
		add_ext(x, issuer, NID_subject_alt_name, san);
	cr_assert(X509_sign(x, ikey ? ikey : key, EVP_sha256()));
	return x;
}

static void write_pem(const char *dir, const char *name, X509 *const *certs, size_t n, EVP_PKEY *key)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	for (size_t i = 0; i < n; i++)
		PEM_write_X509(f, certs[i]);
	if (key)
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

/* A test PKI: a root and an intermediate signed by it (the plug-in CA), written to <tmpdir>/<name>/. */
struct pki {
	EVP_PKEY *root_key, *ca_key;
	X509 *root, *ca;
	char dir[300];
};

static void pki_make(struct pki *p, const char *name)
{
	snprintf(p->dir, sizeof(p->dir), "%s/%s", tmpdir, name);
	cr_assert_eq(mkdir(p->dir, 0700), 0);
	p->root_key = EVP_EC_gen("P-256");
	p->ca_key = EVP_EC_gen("P-256");
	/* The same names in every test PKI: the key identifiers must tell the issuers apart (a rotated root
	 * often keeps its subject). */
	p->root = make_cert(p->root_key, NULL, NULL, "test root", true, NOW - 86400, NOW + 365 * 86400, NULL);
	p->ca =
	    make_cert(p->ca_key, p->root, p->root_key, "test intermediate", true, NOW - 86400, NOW + 30 * 86400, NULL);
	write_pem(p->dir, "ca-cert.pem", &p->ca, 1, NULL);
	write_pem(p->dir, "ca-key.pem", NULL, 0, p->ca_key);
	write_pem(p->dir, "root-cert.pem", &p->root, 1, NULL);
	write_pem(p->dir, "cert-chain.pem", (X509 *[]){ p->ca, p->root }, 2, NULL);
}

static void pki_free(struct pki *p)
{
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->ca_key);
	X509_free(p->root);
	X509_free(p->ca);
}

static struct xm_ca *open_generated_at(int64_t now)
{
	struct xm_ca_opts o = { .state_dir = tmpdir };
	char err[512] = "";
	struct xm_ca *ca = ca_open(&o, now, err, sizeof(err));

	cr_assert_not_null(ca, "ca_open: %s", err);
	return ca;
}

static enum xm_verify_reason verify_cert(struct xm_trust_bundle *b, const struct xm_cert *c, int64_t now,
					 struct xm_spiffe_id *id)
{
	return verify_peer(b, cert_leaf(c), cert_chain(c), TD, now, XM_PEER_CLIENT, id);
}

static struct xm_ca *open_generated(void)
{
	return open_generated_at(NOW);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The generated root */

TestSuite(identity_ca, .init = tmp_setup, .fini = tmp_teardown);

Test(identity_ca, generated_root_mints_and_verifies)
{
	struct xm_ca *ca = open_generated();
	struct xm_spiffe_id id;
	struct xm_cert *c;
	X509 *leaf;
	int err, crit = -1;
	ASN1_BIT_STRING *ku;
	EXTENDED_KEY_USAGE *eku;
	GENERAL_NAMES *names;

	c = ca_mint(ca, "spiffe://cluster.local/ns/shop/sa/reviews", NOW, 3600, &err);
	cr_assert_not_null(c, "mint: %d", err);
	cr_expect_eq(verify_cert(ca_bundle(ca), c, NOW, &id), XM_VERIFY_OK);
	cr_expect_str_eq(id.uri, "spiffe://cluster.local/ns/shop/sa/reviews");
	cr_expect_str_eq(id.ns, "shop");
	cr_expect_str_eq(id.sa, "reviews");
	cr_expect_eq(verify_peer(ca_bundle(ca), cert_leaf(c), cert_chain(c), TD, NOW, XM_PEER_SERVER, NULL),
		     XM_VERIFY_OK);
	cr_expect_eq(sk_X509_num(cert_chain(c)), 0, "a generated root is its own CA: no intermediate to send");
	cr_expect_eq(cert_not_after(c) - NOW, 3600);
	cr_expect(cert_not_before(c) <= NOW && cert_not_before(c) >= NOW - 60);
	cr_expect_eq(cert_renew_at(c), NOW + 1800);
	cr_expect_eq(strlen(cert_serial(c)), 32, "128-bit serial: %s", cert_serial(c));

	leaf = cert_leaf(c);
	cr_expect_eq(EVP_PKEY_get_base_id(cert_key(c)), EVP_PKEY_EC);
	cr_expect_eq(EVP_PKEY_get_bits(cert_key(c)), 256);
	ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
	cr_assert_not_null(ku);
	cr_expect_eq(crit, 1);
	cr_expect(ASN1_BIT_STRING_get_bit(ku, 0), "digitalSignature");
	cr_expect(ASN1_BIT_STRING_get_bit(ku, 2), "keyEncipherment (Istio's workload key usage)");
	cr_expect(!ASN1_BIT_STRING_get_bit(ku, 5), "no keyCertSign");
	ASN1_BIT_STRING_free(ku);
	eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	cr_assert_not_null(eku);
	cr_expect_eq(sk_ASN1_OBJECT_num(eku), 2);
	cr_expect_eq(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
	cr_expect_eq(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	names = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	cr_assert_not_null(names);
	cr_expect_eq(sk_GENERAL_NAME_num(names), 1);
	cr_expect_eq(sk_GENERAL_NAME_value(names, 0)->type, GEN_URI);
	GENERAL_NAMES_free(names);
	cr_expect_eq(X509_check_ca(leaf), 0);

	cert_put(c);
	cr_expect_null(ca_mint(ca, "not-spiffe", NOW, 3600, &err));
	cr_expect_eq(err, -EINVAL);
	ca_free(ca);
}

Test(identity_ca, generated_root_is_0600_and_reused)
{
	struct xm_ca *a = open_generated(), *b;
	char path[512], fp[XM_FINGERPRINT_LEN];
	struct xm_cert *c;
	struct stat st;
	int err;

	snprintf(path, sizeof(path), "%s/ca/ca-key.pem", tmpdir);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "key mode %o", st.st_mode & 0777);
	snprintf(path, sizeof(path), "%s/ca", tmpdir);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 077, 0, "directory mode %o", st.st_mode & 0777);
	cr_expect(strstr(ca_source(a), "new generated") != NULL, "%s", ca_source(a));
	cr_assert_eq(bundle_n_roots(ca_bundle(a)), 1);
	snprintf(fp, sizeof(fp), "%s", bundle_root_fingerprint(ca_bundle(a), 0));
	cr_expect_eq(strlen(fp), 95);

	/* The next start: the same root, and what the first one minted still verifies. */
	c = ca_mint(a, "spiffe://cluster.local/ns/a/sa/b", NOW, 3600, &err);
	cr_assert_not_null(c);
	ca_free(a);
	b = open_generated();
	cr_expect(strstr(ca_source(b), "new") == NULL, "%s", ca_source(b));
	cr_expect_str_eq(bundle_root_fingerprint(ca_bundle(b), 0), fp);
	cr_expect_eq(verify_cert(ca_bundle(b), c, NOW + 10, NULL), XM_VERIFY_OK);
	cert_put(c);
	ca_free(b);

	/* A key others can read is refused, not used. */
	snprintf(path, sizeof(path), "%s/ca/ca-key.pem", tmpdir);
	cr_assert_eq(chmod(path, 0644), 0);
	{
		struct xm_ca_opts o = { .state_dir = tmpdir };
		char msg[512] = "";

		cr_expect_null(ca_open(&o, NOW, msg, sizeof(msg)));
		cr_expect(strstr(msg, "0600") != NULL, "%s", msg);
		cr_expect(strstr(msg, "PRIVATE") == NULL);
	}
}

/* ---------------------------------------------------------------------------------------------------- */
/* The plug-in CA */

Test(identity_ca, plugin_intermediate_sends_its_chain)
{
	struct pki p;
	struct xm_ca_opts o;
	struct xm_ca *ca;
	struct xm_cert *c;
	char err[512] = "";
	int e;

	pki_make(&p, "plugin");
	o = (struct xm_ca_opts){ .ca_dir = p.dir };
	ca = ca_open(&o, NOW, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	cr_expect(strstr(ca_source(ca), "--ca-dir") != NULL);
	c = ca_mint(ca, "spiffe://cluster.local/ns/x/sa/y", NOW, 7200, &e);
	cr_assert_not_null(c);
	cr_assert_eq(sk_X509_num(cert_chain(c)), 1, "the intermediate, not the root");
	cr_expect_eq(X509_cmp(sk_X509_value(cert_chain(c), 0), p.ca), 0);
	cr_expect_eq(verify_cert(ca_bundle(ca), c, NOW, NULL), XM_VERIFY_OK);
	/* Without the intermediate the peer cannot reach the root. */
	cr_expect_eq(verify_peer(ca_bundle(ca), cert_leaf(c), NULL, TD, NOW, XM_PEER_CLIENT, NULL),
		     XM_VERIFY_UNKNOWN_CA);
	cert_put(c);

	/* A leaf never outlives its CA (30 days here). */
	c = ca_mint(ca, "spiffe://cluster.local/ns/x/sa/y", NOW, 90 * 86400, &e);
	cr_assert_not_null(c);
	cr_expect_eq(cert_not_after(c), ca_not_after(ca));
	cert_put(c);
	ca_free(ca);
	pki_free(&p);
}

Test(identity_ca, plugin_refuses_bad_files)
{
	struct pki p, other;
	struct xm_ca_opts o;
	char err[512] = "";

	pki_make(&p, "plugin");
	pki_make(&other, "other");
	o = (struct xm_ca_opts){ .ca_dir = p.dir };

	/* The key of another CA. */
	write_pem(p.dir, "ca-key.pem", NULL, 0, other.ca_key);
	cr_expect_null(ca_open(&o, NOW, err, sizeof(err)));
	cr_expect(strstr(err, "is not the key") != NULL, "%s", err);
	write_pem(p.dir, "ca-key.pem", NULL, 0, p.ca_key);

	/* A root that did not sign it. */
	write_pem(p.dir, "root-cert.pem", &other.root, 1, NULL);
	cr_expect_null(ca_open(&o, NOW, err, sizeof(err)));
	cr_expect(strstr(err, "does not chain") != NULL, "%s", err);
	write_pem(p.dir, "root-cert.pem", &p.root, 1, NULL);

	/* Missing files. */
	o.ca_dir = tmpdir;
	cr_expect_null(ca_open(&o, NOW, err, sizeof(err)));
	cr_expect(strstr(err, "ca-cert.pem") != NULL, "%s", err);

	/* The CA itself expired. */
	o.ca_dir = p.dir;
	cr_expect_null(ca_open(&o, NOW + 40 * 86400, err, sizeof(err)));
	cr_expect(strstr(err, "expired") != NULL, "%s", err);
	pki_free(&p);
	pki_free(&other);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Refusals, each with its reason */

static void expect_refused(struct xm_trust_bundle *b, X509 *leaf, STACK_OF(X509) * chain, int64_t now,
			   enum xm_verify_reason want)
{
	uint64_t before = verify_failures(want);
	enum xm_verify_reason r = verify_peer(b, leaf, chain, TD, now, XM_PEER_CLIENT, NULL);

	cr_expect_eq(r, want, "got %s, want %s", verify_reason_name(r), verify_reason_name(want));
	cr_expect_eq(verify_failures(want), before + 1, "%s counted", verify_reason_name(want));
}

Test(identity_ca, refusals_by_reason)
{
	struct pki p, other;
	struct xm_ca_opts o;
	struct xm_ca *ca;
	struct xm_cert *good, *foreign;
	STACK_OF(X509) *chain = sk_X509_new_null();
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x;
	char err[512] = "";
	int e;

	pki_make(&p, "plugin");
	pki_make(&other, "other");
	o = (struct xm_ca_opts){ .ca_dir = p.dir };
	ca = ca_open(&o, NOW, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	sk_X509_push(chain, p.ca);

	good = ca_mint(ca, "spiffe://cluster.local/ns/a/sa/b", NOW, 3600, &e);
	cr_assert_not_null(good);
	expect_refused(ca_bundle(ca), cert_leaf(good), cert_chain(good), NOW + 3601, XM_VERIFY_EXPIRED);
	expect_refused(ca_bundle(ca), cert_leaf(good), cert_chain(good), NOW - 3600, XM_VERIFY_NOT_YET_VALID);
	expect_refused(ca_bundle(ca), NULL, NULL, NOW, XM_VERIFY_NO_CERT);

	foreign = ca_mint(ca, "spiffe://other.domain/ns/a/sa/b", NOW, 3600, &e);
	cr_assert_not_null(foreign);
	expect_refused(ca_bundle(ca), cert_leaf(foreign), cert_chain(foreign), NOW, XM_VERIFY_WRONG_TRUST_DOMAIN);
	cert_put(foreign);

	x = make_cert(k, p.ca, p.ca_key, "no san", false, NOW - 60, NOW + 3600, NULL);
	expect_refused(ca_bundle(ca), x, chain, NOW, XM_VERIFY_NO_URI_SAN);
	X509_free(x);
	x = make_cert(k, p.ca, p.ca_key, NULL, false, NOW - 60, NOW + 3600, "DNS:reviews.shop.svc");
	expect_refused(ca_bundle(ca), x, chain, NOW, XM_VERIFY_NO_URI_SAN);
	X509_free(x);
	x = make_cert(k, p.ca, p.ca_key, NULL, false, NOW - 60, NOW + 3600,
		      "URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/a/sa/c");
	expect_refused(ca_bundle(ca), x, chain, NOW, XM_VERIFY_MANY_URI_SANS);
	X509_free(x);
	x = make_cert(k, p.ca, p.ca_key, NULL, false, NOW - 60, NOW + 3600, "URI:https://cluster.local/ns/a/sa/b");
	expect_refused(ca_bundle(ca), x, chain, NOW, XM_VERIFY_BAD_SPIFFE_ID);
	X509_free(x);
	/* A CA certificate presented as a workload. */
	x = make_cert(k, p.ca, p.ca_key, "sub ca", true, NOW - 60, NOW + 3600, NULL);
	expect_refused(ca_bundle(ca), x, chain, NOW, XM_VERIFY_BAD_USAGE);
	X509_free(x);

	/* A perfectly formed leaf from an unknown root. */
	{
		struct xm_ca_opts oo = { .ca_dir = other.dir };
		struct xm_ca *oca = ca_open(&oo, NOW, err, sizeof(err));
		struct xm_cert *stranger;

		cr_assert_not_null(oca, "%s", err);
		stranger = ca_mint(oca, "spiffe://cluster.local/ns/a/sa/b", NOW, 3600, &e);
		cr_assert_not_null(stranger);
		expect_refused(ca_bundle(ca), cert_leaf(stranger), cert_chain(stranger), NOW, XM_VERIFY_UNKNOWN_CA);
		cert_put(stranger);
		ca_free(oca);
	}
	/* The right issuer's name, another key: the signature does not verify. */
	{
		EVP_PKEY *imposter = EVP_EC_gen("P-256");

		x = make_cert(k, p.ca, imposter, NULL, false, NOW - 60, NOW + 3600,
			      "URI:spiffe://cluster.local/ns/a/sa/b");
		{
			uint64_t bad_sig = verify_failures(XM_VERIFY_BAD_SIGNATURE);
			enum xm_verify_reason r = verify_peer(ca_bundle(ca), x, chain, TD, NOW, XM_PEER_CLIENT, NULL);

			/* OpenSSL may also report that no issuer matches the (copied) key identifier */
			cr_expect(r == XM_VERIFY_BAD_SIGNATURE || r == XM_VERIFY_UNKNOWN_CA, "%s",
				  verify_reason_name(r));
			cr_expect(r != XM_VERIFY_BAD_SIGNATURE || verify_failures(r) == bad_sig + 1);
		}
		X509_free(x);
		EVP_PKEY_free(imposter);
	}
	/* Bytes: garbage, empty. */
	{
		static const uint8_t junk[] = { 0x30, 0x82, 0x01, 0x00, 0x01 };

		cr_expect_eq(verify_peer_bytes(ca_bundle(ca), junk, sizeof(junk), TD, NOW, XM_PEER_CLIENT, NULL),
			     XM_VERIFY_MALFORMED);
		cr_expect_eq(verify_peer_bytes(ca_bundle(ca), junk, 0, TD, NOW, XM_PEER_CLIENT, NULL),
			     XM_VERIFY_NO_CERT);
	}
	/* ...and the good one still passes, as DER bytes too. */
	{
		unsigned char *der = NULL, *d2 = NULL;
		int n1 = i2d_X509(cert_leaf(good), &der), n2 = i2d_X509(p.ca, &d2);
		uint8_t *both = malloc((size_t)n1 + (size_t)n2);
		struct xm_spiffe_id id;

		memcpy(both, der, (size_t)n1);
		memcpy(both + n1, d2, (size_t)n2);
		cr_expect_eq(
		    verify_peer_bytes(ca_bundle(ca), both, (size_t)n1 + (size_t)n2, TD, NOW, XM_PEER_CLIENT, &id),
		    XM_VERIFY_OK);
		cr_expect_str_eq(id.uri, "spiffe://cluster.local/ns/a/sa/b");
		free(both);
		OPENSSL_free(der);
		OPENSSL_free(d2);
	}
	cert_put(good);
	sk_X509_free(chain);
	EVP_PKEY_free(k);
	ca_free(ca);
	pki_free(&p);
	pki_free(&other);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Root rotation: a bundle with two roots */

Test(identity_ca, bundle_with_two_roots_verifies_both)
{
	struct pki a, b;
	struct xm_ca_opts oa, ob;
	struct xm_ca *ca_a, *ca_b;
	struct xm_cert *ca_leaf, *cb_leaf;
	char err[512] = "";
	int e;

	pki_make(&a, "old");
	pki_make(&b, "new");
	/* Both nodes trust both roots while the mesh moves from the old one to the new one. */
	write_pem(a.dir, "root-cert.pem", (X509 *[]){ a.root, b.root }, 2, NULL);
	write_pem(b.dir, "root-cert.pem", (X509 *[]){ b.root, a.root }, 2, NULL);
	oa = (struct xm_ca_opts){ .ca_dir = a.dir };
	ob = (struct xm_ca_opts){ .ca_dir = b.dir };
	ca_a = ca_open(&oa, NOW, err, sizeof(err));
	cr_assert_not_null(ca_a, "%s", err);
	ca_b = ca_open(&ob, NOW, err, sizeof(err));
	cr_assert_not_null(ca_b, "%s", err);
	cr_expect_eq(bundle_n_roots(ca_bundle(ca_a)), 2);
	cr_expect_str_neq(bundle_root_fingerprint(ca_bundle(ca_a), 0), bundle_root_fingerprint(ca_bundle(ca_a), 1));
	ca_leaf = ca_mint(ca_a, "spiffe://cluster.local/ns/a/sa/a", NOW, 3600, &e);
	cb_leaf = ca_mint(ca_b, "spiffe://cluster.local/ns/b/sa/b", NOW, 3600, &e);
	cr_assert(ca_leaf && cb_leaf);
	cr_expect_eq(verify_cert(ca_bundle(ca_a), ca_leaf, NOW, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(ca_a), cb_leaf, NOW, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(ca_b), ca_leaf, NOW, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(ca_b), cb_leaf, NOW, NULL), XM_VERIFY_OK);
	cert_put(ca_leaf);
	cert_put(cb_leaf);
	ca_free(ca_a);
	ca_free(ca_b);
	pki_free(&a);
	pki_free(&b);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The store: renewal at half-life, holders keep their object */

Test(identity_ca, store_mints_renews_and_forgets)
{
	struct xm_ca *ca = open_generated();
	struct xm_identity_store *s = identity_store_new();
	const char *two[] = { "spiffe://cluster.local/ns/a/sa/x", "spiffe://cluster.local/ns/b/sa/y",
			      "spiffe://cluster.local/ns/a/sa/x" };
	struct xm_store_sync_result r;
	struct xm_cert *held, *again, *fresh;
	char serial[64];

	cr_assert_not_null(s);
	cr_expect_eq(identity_store_generation(s), 0);
	cr_assert_eq(identity_store_sync(s, ca, two, 3, NOW, 60, &r), 0);
	cr_expect_eq(r.minted, 2);
	cr_expect_eq(identity_store_generation(s), 1); /* the tunnel's pool rechecks at each change */
	cr_expect_eq(identity_store_count(s), 2);
	cr_expect_eq(identity_store_next_renewal(s), NOW + 30);
	held = identity_store_get(s, two[0]);
	cr_assert_not_null(held);
	snprintf(serial, sizeof(serial), "%s", cert_serial(held));

	/* Before half-life: nothing changes, the same object. */
	cr_assert_eq(identity_store_sync(s, ca, two, 2, NOW + 29, 60, &r), 0);
	cr_expect_eq(r.minted + r.renewed + r.dropped, 0);
	cr_expect_eq(identity_store_generation(s), 1);
	again = identity_store_get(s, two[0]);
	cr_expect_eq(again, held);
	cert_put(again);

	/* At half-life: a new certificate; the holder's stays whole and valid until its own expiry. */
	cr_assert_eq(identity_store_sync(s, ca, two, 2, NOW + 30, 60, &r), 0);
	cr_expect_eq(r.renewed, 2);
	cr_expect_eq(identity_store_generation(s), 2);
	fresh = identity_store_get(s, two[0]);
	cr_assert_not_null(fresh);
	cr_expect_neq(fresh, held);
	cr_expect_str_neq(cert_serial(fresh), serial);
	cr_expect_str_eq(cert_serial(held), serial);
	cr_expect_eq(cert_not_after(fresh), NOW + 90);
	cr_expect_eq(verify_cert(ca_bundle(ca), held, NOW + 45, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(ca), held, NOW + 61, NULL), XM_VERIFY_EXPIRED);
	cr_expect_eq(verify_cert(ca_bundle(ca), fresh, NOW + 61, NULL), XM_VERIFY_OK);

	/* A pod that left: forgotten; a holder still has it. */
	cr_assert_eq(identity_store_sync(s, ca, two + 1, 1, NOW + 31, 60, &r), 0);
	cr_expect_eq(r.dropped, 1);
	cr_expect_eq(identity_store_generation(s), 3);
	cr_expect_null(identity_store_get(s, two[0]));
	cr_expect_str_eq(cert_spiffe(held), two[0]);
	cert_put(held);
	cert_put(fresh);

	cr_assert_eq(identity_store_sync(s, ca, NULL, 0, NOW + 32, 60, &r), 0);
	cr_expect_eq(identity_store_count(s), 0);
	cr_expect_eq(identity_store_next_renewal(s), INT64_MAX);
	identity_store_free(s);
	ca_free(ca);
}

/* A TLS 1.3 handshake between two SSL objects over a BIO pair; true when both ends completed it. */
static bool handshake(SSL_CTX *sctx, SSL_CTX *cctx, const struct xm_cert *srv, const struct xm_cert *cli, SSL **s,
		      SSL **c)
{
	BIO *sb, *cb;
	int rs = 0, rc = 0;

	*s = SSL_new(sctx);
	*c = SSL_new(cctx);
	cr_assert(*s && *c);
	cr_assert_eq(cert_use(srv, *s), 0);
	if (cli)
		cr_assert_eq(cert_use(cli, *c), 0);
	cr_assert(BIO_new_bio_pair(&sb, 0, &cb, 0));
	SSL_set_bio(*s, sb, sb);
	SSL_set_bio(*c, cb, cb);
	SSL_set_accept_state(*s);
	SSL_set_connect_state(*c);
	for (int i = 0; i < 20 && (rs != 1 || rc != 1); i++) {
		if (rc != 1)
			rc = SSL_do_handshake(*c);
		if (rs != 1)
			rs = SSL_do_handshake(*s);
	}
	/* TLS 1.3: the client finishes before the server has checked its certificate; a read tells. */
	if (rc == 1 && rs == 1) {
		char byte;

		SSL_write(*s, "x", 1);
		rc = SSL_read(*c, &byte, 1) == 1;
	}
	return rc == 1 && rs == 1;
}

/* The certificates and verify_tls_callback in real TLS 1.3 handshakes: both ends learn the other's ID; a
 * client from another root, or without a certificate, is refused by the server. */
Test(identity_ca, tls_handshake_with_spiffe_peers)
{
	int64_t now = time(NULL); /* the handshake checks validity by the real clock */
	struct xm_ca *ca = open_generated_at(now), *stranger_ca;
	struct xm_ca_opts so;
	struct xm_cert *srv, *cli, *stranger;
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
	struct xm_tls_peer_policy sp = { ca_bundle(ca), TD, XM_PEER_CLIENT },
				  cp = { ca_bundle(ca), TD, XM_PEER_SERVER };
	char dir[300], err[512] = "";
	uint64_t unknown;
	SSL *s, *c;
	int e;

	srv = ca_mint(ca, "spiffe://cluster.local/ns/s/sa/server", now, 3600, &e);
	cli = ca_mint(ca, "spiffe://cluster.local/ns/c/sa/client", now, 3600, &e);
	cr_assert(srv && cli && sctx && cctx);
	SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(sctx, verify_tls_callback, &sp);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(cctx, verify_tls_callback, &cp);

	cr_assert(handshake(sctx, cctx, srv, cli, &s, &c), "handshake between two workloads of one root");
	cr_assert_not_null(verify_tls_peer(s));
	cr_expect_str_eq(verify_tls_peer(s)->uri, "spiffe://cluster.local/ns/c/sa/client");
	cr_assert_not_null(verify_tls_peer(c));
	cr_expect_str_eq(verify_tls_peer(c)->uri, "spiffe://cluster.local/ns/s/sa/server");
	cr_expect_str_eq(verify_tls_peer(c)->sa, "server");
	SSL_free(s);
	SSL_free(c);

	/* Another root's workload: the server refuses it, for that reason. */
	snprintf(dir, sizeof(dir), "%s/other", tmpdir);
	so = (struct xm_ca_opts){ .state_dir = dir };
	stranger_ca = ca_open(&so, now, err, sizeof(err));
	cr_assert_not_null(stranger_ca, "%s", err);
	stranger = ca_mint(stranger_ca, "spiffe://cluster.local/ns/c/sa/client", now, 3600, &e);
	cr_assert_not_null(stranger);
	unknown = verify_failures(XM_VERIFY_UNKNOWN_CA);
	cr_expect(!handshake(sctx, cctx, srv, stranger, &s, &c), "a client of another root got through");
	cr_expect_null(verify_tls_peer(s));
	cr_expect_eq(verify_failures(XM_VERIFY_UNKNOWN_CA), unknown + 1);
	SSL_free(s);
	SSL_free(c);

	/* No client certificate at all. */
	cr_expect(!handshake(sctx, cctx, srv, NULL, &s, &c), "a client without a certificate got through");
	cr_expect_null(verify_tls_peer(s));
	SSL_free(s);
	SSL_free(c);

	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	cert_put(srv);
	cert_put(cli);
	cert_put(stranger);
	ca_free(ca);
	ca_free(stranger_ca);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Reloading the plug-in CA: what a new set must pass, what switching does to the store */

#define ID_A "spiffe://cluster.local/ns/a/sa/x"

/* A new intermediate of p's root, written over p's ca-cert.pem, ca-key.pem and cert-chain.pem. */
static void pki_new_intermediate(struct pki *p)
{
	X509_free(p->ca);
	EVP_PKEY_free(p->ca_key);
	p->ca_key = EVP_EC_gen("P-256");
	p->ca =
	    make_cert(p->ca_key, p->root, p->root_key, "test intermediate", true, NOW - 3600, NOW + 30 * 86400, NULL);
	write_pem(p->dir, "ca-cert.pem", &p->ca, 1, NULL);
	write_pem(p->dir, "ca-key.pem", NULL, 0, p->ca_key);
	write_pem(p->dir, "cert-chain.pem", (X509 *[]){ p->ca, p->root }, 2, NULL);
}

static struct xm_ca *open_dir(const char *dir, char *err, size_t errlen)
{
	struct xm_ca_opts o = { .ca_dir = dir };

	err[0] = '\0';
	return ca_open(&o, NOW, err, errlen);
}

Test(identity_ca, reload_new_intermediate_reissues_at_once)
{
	struct pki p;
	struct xm_ca *ca, *next;
	struct xm_identity_store *s = identity_store_new();
	struct xm_store_sync_result r;
	struct xm_cert *held, *fresh;
	const char *ids[] = { ID_A };
	char err[512];

	pki_make(&p, "plugin");
	ca = open_dir(p.dir, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	cr_assert_eq(identity_store_sync(s, ca, ids, 1, NOW, 3600, &r), 0);
	held = identity_store_get(s, ID_A);
	cr_assert_not_null(held);
	cr_expect(ca_issued(ca, held));

	/* The same files again: the same signer, nothing to mint. */
	next = open_dir(p.dir, err, sizeof(err));
	cr_assert_not_null(next, "%s", err);
	cr_expect(ca_same_signer(ca, next));
	cr_assert_eq(identity_store_sync(s, next, ids, 1, NOW + 1, 3600, &r), 0);
	cr_expect_eq(r.renewed + r.minted + r.reissued, 0);
	ca_free(next);

	/* A new intermediate under the same root (same subject name): minted again long before half-life. */
	pki_new_intermediate(&p);
	next = open_dir(p.dir, err, sizeof(err));
	cr_assert_not_null(next, "%s", err);
	cr_expect_not(ca_same_signer(ca, next));
	cr_expect_not(ca_issued(next, held));
	cr_assert_eq(identity_store_sync(s, next, ids, 1, NOW + 2, 3600, &r), 0);
	cr_expect_eq(r.renewed, 1);
	cr_expect_eq(r.reissued, 1);
	fresh = identity_store_get(s, ID_A);
	cr_assert_not_null(fresh);
	cr_expect_neq(fresh, held);
	cr_expect(ca_issued(next, fresh));
	cr_expect_eq(memcmp(cert_issuer_id(fresh), ca_id(next), 32), 0);
	cr_expect_eq(X509_cmp(sk_X509_value(cert_chain(fresh), 0), p.ca), 0, "sent with the new intermediate");
	cr_expect_eq(verify_cert(ca_bundle(next), fresh, NOW + 2, NULL), XM_VERIFY_OK);
	/* The holder of the old one keeps a certificate that still verifies (same root). */
	cr_expect_eq(verify_cert(ca_bundle(next), held, NOW + 2, NULL), XM_VERIFY_OK);

	/* Once reissued, the next sync before half-life leaves it alone. */
	cr_assert_eq(identity_store_sync(s, next, ids, 1, NOW + 3, 3600, &r), 0);
	cr_expect_eq(r.renewed, 0);
	cert_put(held);
	cert_put(fresh);
	identity_store_free(s);
	ca_free(ca);
	ca_free(next);
	pki_free(&p);
}

Test(identity_ca, reload_new_root_with_both_roots_in_the_bundle)
{
	struct pki p, q;
	struct xm_ca *ca, *next;
	struct xm_cert *old_leaf, *new_leaf;
	char err[512];
	int e;

	pki_make(&p, "plugin");
	pki_make(&q, "newroot");
	ca = open_dir(p.dir, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	old_leaf = ca_mint(ca, ID_A, NOW, 3600, &e);
	cr_assert_not_null(old_leaf);

	/* Istio's root rotation: the new intermediate of the new root signs, root-cert.pem holds both roots. */
	write_pem(p.dir, "ca-cert.pem", &q.ca, 1, NULL);
	write_pem(p.dir, "ca-key.pem", NULL, 0, q.ca_key);
	write_pem(p.dir, "cert-chain.pem", (X509 *[]){ q.ca, q.root }, 2, NULL);
	write_pem(p.dir, "root-cert.pem", (X509 *[]){ p.root, q.root }, 2, NULL);
	next = open_dir(p.dir, err, sizeof(err));
	cr_assert_not_null(next, "%s", err);
	cr_expect_eq(bundle_n_roots(ca_bundle(next)), 2);
	new_leaf = ca_mint(next, ID_A, NOW, 3600, &e);
	cr_assert_not_null(new_leaf);
	/* The new bundle trusts both generations; the old one only its own. */
	cr_expect_eq(verify_cert(ca_bundle(next), old_leaf, NOW, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(next), new_leaf, NOW, NULL), XM_VERIFY_OK);
	cr_expect_eq(verify_cert(ca_bundle(ca), new_leaf, NOW, NULL), XM_VERIFY_UNKNOWN_CA);
	cert_put(old_leaf);
	cert_put(new_leaf);
	ca_free(ca);
	ca_free(next);
	pki_free(&p);
	pki_free(&q);
}

/* Writes the first len bytes (or all when len < 0) of a PEM of x or key to dir/name. */
static void write_cut(const char *dir, const char *name, X509 *x, EVP_PKEY *key, long cut)
{
	BIO *b = BIO_new(BIO_s_mem());
	char path[512], *data;
	long n;
	FILE *f;

	cr_assert(x ? PEM_write_bio_X509(b, x) : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, (size_t)(cut < n ? cut : n), f), (size_t)(cut < n ? cut : n));
	fclose(f);
	BIO_free(b);
}

/* Each bad set is refused with the file and the reason in the message; none of them leaks the key's PEM. */
Test(identity_ca, reload_refuses_bad_sets)
{
	struct pki p, other;
	EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
	X509 *leaf, *expired;
	char err[512];

	pki_make(&p, "plugin");
	pki_make(&other, "other");

	/* A new certificate with the old key (the key not written yet). */
	write_pem(p.dir, "ca-cert.pem", &other.ca, 1, NULL);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-key.pem is not the key of ca-cert.pem") != NULL, "%s", err);
	write_pem(p.dir, "ca-cert.pem", &p.ca, 1, NULL);

	/* A certificate that is no CA. */
	leaf = make_cert(p.ca_key, p.root, p.root_key, "not a ca", false, NOW - 60, NOW + 86400,
			 "URI:spiffe://cluster.local/ns/a/sa/b");
	write_pem(p.dir, "ca-cert.pem", &leaf, 1, NULL);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-cert.pem: not a CA certificate") != NULL, "%s", err);

	/* An intermediate that expired yesterday. */
	expired = make_cert(p.ca_key, p.root, p.root_key, "old", true, NOW - 10 * 86400, NOW - 86400, NULL);
	write_pem(p.dir, "ca-cert.pem", &expired, 1, NULL);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-cert.pem does not chain to root-cert.pem: certificate has expired") != NULL, "%s",
		  err);

	/* Half-written files: a certificate, then a key, cut in the middle. */
	write_cut(p.dir, "ca-cert.pem", p.ca, NULL, 300);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-cert.pem: no PEM certificate") != NULL, "%s", err);
	write_pem(p.dir, "ca-cert.pem", &p.ca, 1, NULL);
	write_cut(p.dir, "ca-key.pem", NULL, p.ca_key, 120);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-key.pem: no PEM private key") != NULL, "%s", err);
	cr_expect(strstr(err, "PRIVATE KEY") == NULL && strstr(err, "MII") == NULL, "%s", err);
	write_pem(p.dir, "ca-key.pem", NULL, 0, p.ca_key);
	write_cut(p.dir, "root-cert.pem", p.root, NULL, 200);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "root-cert.pem: no PEM certificate") != NULL, "%s", err);

	/* A chain to a root that root-cert.pem does not hold. */
	write_pem(p.dir, "root-cert.pem", &other.root, 1, NULL);
	cr_expect_null(open_dir(p.dir, err, sizeof(err)));
	cr_expect(strstr(err, "ca-cert.pem does not chain to root-cert.pem") != NULL, "%s", err);

	/* Put right again: accepted. */
	write_pem(p.dir, "root-cert.pem", &p.root, 1, NULL);
	{
		struct xm_ca *ok = open_dir(p.dir, err, sizeof(err));

		cr_expect_not_null(ok, "%s", err);
		ca_free(ok);
	}
	X509_free(leaf);
	X509_free(expired);
	EVP_PKEY_free(leaf_key);
	pki_free(&p);
	pki_free(&other);
}

Test(identity_ca, files_stamp_sees_writes_and_symlink_swaps)
{
	struct pki p;
	char data[300], link[400], target[400];
	uint64_t a, b, c;

	pki_make(&p, "plugin");
	a = ca_files_stamp(p.dir);
	cr_expect_eq(ca_files_stamp(p.dir), a, "nothing written, the same stamp");
	usleep(20000); /* past the file system's timestamp granularity (a jiffy) */
	write_pem(p.dir, "root-cert.pem", &p.root, 1, NULL); /* the same bytes, written again */
	b = ca_files_stamp(p.dir);
	cr_expect_neq(b, a);

	/* Kubernetes' layout: name -> ..data/name, ..data -> ..<timestamp>; the update swaps ..data. */
	snprintf(data, sizeof(data), "%s/k8s", tmpdir);
	cr_assert_eq(mkdir(data, 0700), 0);
	snprintf(target, sizeof(target), "%s/..v1", data);
	cr_assert_eq(rename(p.dir, target), 0);
	snprintf(link, sizeof(link), "%s/..data", data);
	cr_assert_eq(symlink("..v1", link), 0);
	{
		static const char *const names[] = { "ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem" };
		char l[500], t[100];

		for (int i = 0; i < 4; i++) {
			snprintf(l, sizeof(l), "%s/%s", data, names[i]);
			snprintf(t, sizeof(t), "..data/%s", names[i]);
			cr_assert_eq(symlink(t, l), 0);
		}
	}
	c = ca_files_stamp(data);
	cr_expect_eq(ca_files_stamp(data), c);
	/* A copy of the set under a new timestamped directory, then the atomic swap of ..data. */
	{
		char cmd[1200], tmp_link[420];

		snprintf(cmd, sizeof(cmd), "cp -a '%s/..v1' '%s/..v2'", data, data);
		cr_assert_eq(system(cmd), 0);
		cr_expect_eq(ca_files_stamp(data), c, "a new directory alone changes nothing");
		snprintf(tmp_link, sizeof(tmp_link), "%s/..data_tmp", data);
		cr_assert_eq(symlink("..v2", tmp_link), 0);
		cr_assert_eq(rename(tmp_link, link), 0);
	}
	cr_expect_neq(ca_files_stamp(data), c, "the swap is seen");
	{
		char err[512];
		struct xm_ca *ca = open_dir(data, err, sizeof(err));

		cr_expect_not_null(ca, "%s", err);
		ca_free(ca);
	}
	pki_free(&p);
}

Test(identity_ca, store_publishes_the_bundle)
{
	struct xm_ca *ca = open_generated();
	struct xm_identity_store *s = identity_store_new();
	struct xm_trust_bundle *b;

	cr_expect_null(identity_store_bundle(s));
	identity_store_set_bundle(s, ca_bundle(ca));
	ca_free(ca); /* the store keeps its own reference */
	b = identity_store_bundle(s);
	cr_assert_not_null(b);
	cr_expect_eq(bundle_n_roots(b), 1);
	bundle_put(b);
	identity_store_free(s);
}
