// SPDX-License-Identifier: Apache-2.0
/*
 * The trust bundle and the check of a peer's certificate chain. A peer's certificates are untrusted input:
 * OpenSSL parses and verifies the chain; here the leaf's SPIFFE identity is read and held to the rules of an
 * X.509-SVID (SPIFFE's X509-SVID.md): exactly one URI SAN, a SPIFFE ID, no CA, the expected trust domain.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "identity/internal.h"

#define MAX_PEER_CERTS 16

struct xm_trust_bundle {
	atomic_uint refs;
	X509_STORE *store;
	STACK_OF(X509) * roots;
	char (*fingerprints)[XM_FINGERPRINT_LEN];
};

static _Atomic uint64_t failures[XM_VERIFY_N_REASONS];

static const char *const reason_names[XM_VERIFY_N_REASONS] = {
	[XM_VERIFY_OK] = "ok",
	[XM_VERIFY_NO_CERT] = "no_certificate",
	[XM_VERIFY_MALFORMED] = "malformed",
	[XM_VERIFY_UNKNOWN_CA] = "unknown_ca",
	[XM_VERIFY_EXPIRED] = "expired",
	[XM_VERIFY_NOT_YET_VALID] = "not_yet_valid",
	[XM_VERIFY_BAD_SIGNATURE] = "bad_signature",
	[XM_VERIFY_BAD_USAGE] = "bad_usage",
	[XM_VERIFY_CHAIN_INVALID] = "chain_invalid",
	[XM_VERIFY_NO_URI_SAN] = "no_uri_san",
	[XM_VERIFY_MANY_URI_SANS] = "multiple_uri_sans",
	[XM_VERIFY_BAD_SPIFFE_ID] = "bad_spiffe_id",
	[XM_VERIFY_WRONG_TRUST_DOMAIN] = "wrong_trust_domain",
};

const char *verify_reason_name(enum xm_verify_reason r)
{
	return (unsigned)r < XM_VERIFY_N_REASONS ? reason_names[r] : "unknown";
}

uint64_t verify_failures(enum xm_verify_reason r)
{
	return (unsigned)r < XM_VERIFY_N_REASONS ? atomic_load_explicit(&failures[r], memory_order_relaxed) : 0;
}

static void bundle_free(struct xm_trust_bundle *b)
{
	X509_STORE_free(b->store);
	sk_X509_pop_free(b->roots, X509_free);
	free(b->fingerprints);
	free(b);
}

struct xm_trust_bundle *bundle_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	struct xm_trust_bundle *b = calloc(1, sizeof(*b));
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	int n;

	if (!b || !bio || len > INT32_MAX) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	atomic_init(&b->refs, 1);
	b->store = X509_STORE_new();
	b->roots = sk_X509_new_null();
	if (!b->store || !b->roots) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (X509_check_ca(x) == 0) {
			snprintf(err, errlen, "certificate %d is not a CA", sk_X509_num(b->roots) + 1);
			X509_free(x);
			goto fail;
		}
		if (!sk_X509_push(b->roots, x)) {
			X509_free(x);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		/* A root already in the store (the same certificate twice) is not an error. */
		X509_STORE_add_cert(b->store, x);
	}
	ERR_clear_error();
	n = sk_X509_num(b->roots);
	if (n == 0) {
		snprintf(err, errlen, "no PEM certificate");
		goto fail;
	}
	b->fingerprints = calloc((size_t)n, sizeof(*b->fingerprints));
	if (!b->fingerprints) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < n; i++)
		cert_fingerprint(sk_X509_value(b->roots, i), b->fingerprints[i]);
	BIO_free(bio);
	return b;
fail:
	ERR_clear_error();
	BIO_free(bio);
	if (b)
		bundle_free(b);
	return NULL;
}

struct xm_trust_bundle *bundle_get(struct xm_trust_bundle *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void bundle_put(struct xm_trust_bundle *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		bundle_free(b);
}

int bundle_add_roots(const struct xm_trust_bundle *b, X509_STORE *st)
{
	for (int i = 0; i < sk_X509_num(b->roots); i++)
		if (!X509_STORE_add_cert(st, sk_X509_value(b->roots, i))) { /* a duplicate is no failure (OpenSSL 3) */
			ERR_clear_error();
			return -ENOMEM;
		}
	return 0;
}

size_t bundle_n_roots(const struct xm_trust_bundle *b)
{
	return (size_t)sk_X509_num(b->roots);
}

X509 *bundle_root(const struct xm_trust_bundle *b, size_t i)
{
	return sk_X509_value(b->roots, (int)i);
}

const char *bundle_root_fingerprint(const struct xm_trust_bundle *b, size_t i)
{
	return i < bundle_n_roots(b) ? b->fingerprints[i] : "";
}

X509_STORE *bundle_store(const struct xm_trust_bundle *b)
{
	return b->store;
}

static enum xm_verify_reason chain_reason(int e)
{
	switch (e) {
	case X509_V_OK:
		return XM_VERIFY_OK;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return XM_VERIFY_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return XM_VERIFY_NOT_YET_VALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return XM_VERIFY_UNKNOWN_CA;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
		return XM_VERIFY_BAD_SIGNATURE;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
		return XM_VERIFY_BAD_USAGE;
	case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
	case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
		return XM_VERIFY_MALFORMED;
	default:
		return XM_VERIFY_CHAIN_INVALID;
	}
}

/* The leaf's one URI SAN as a SPIFFE ID of trust_domain. */
static enum xm_verify_reason leaf_identity(X509 *leaf, const char *trust_domain, struct xm_spiffe_id *id)
{
	GENERAL_NAMES *names;
	const ASN1_IA5STRING *uri = NULL;
	int crit = -1, n_uri = 0;

	names = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (!names)
		/* crit -2: the extension twice, which RFC 5280 forbids; -1: absent; else it does not decode */
		return crit == -1 ? XM_VERIFY_NO_URI_SAN : XM_VERIFY_MALFORMED;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_URI) {
			n_uri++;
			uri = g->d.uniformResourceIdentifier;
		}
	}
	if (n_uri == 0) {
		GENERAL_NAMES_free(names);
		return XM_VERIFY_NO_URI_SAN;
	}
	if (n_uri > 1) {
		GENERAL_NAMES_free(names);
		return XM_VERIFY_MANY_URI_SANS;
	}
	if (!uri || uri->length < 0 || spiffe_parse((const char *)uri->data, (size_t)uri->length, id, NULL)) {
		GENERAL_NAMES_free(names);
		return XM_VERIFY_BAD_SPIFFE_ID;
	}
	GENERAL_NAMES_free(names);
	return strcmp(id->trust_domain, trust_domain) ? XM_VERIFY_WRONG_TRUST_DOMAIN : XM_VERIFY_OK;
}

static enum xm_verify_reason check(const struct xm_trust_bundle *b, X509 *leaf, STACK_OF(X509) * untrusted,
				   const char *trust_domain, int64_t now, enum xm_peer_role role,
				   struct xm_spiffe_id *id)
{
	X509_STORE_CTX *ctx;
	X509_VERIFY_PARAM *param;
	enum xm_verify_reason r;

	if (!leaf)
		return XM_VERIFY_NO_CERT;
	/* An X.509-SVID leaf is no CA (SPIFFE X509-SVID.md §4.1); a CA must not act as a workload. */
	if (X509_check_ca(leaf) != 0)
		return XM_VERIFY_BAD_USAGE;
	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, b->store, leaf, untrusted)) {
		X509_STORE_CTX_free(ctx);
		return XM_VERIFY_CHAIN_INVALID;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)now);
	X509_VERIFY_PARAM_set_depth(param, MAX_PEER_CERTS);
	X509_STORE_CTX_set_purpose(ctx, role == XM_PEER_SERVER ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
	r = X509_verify_cert(ctx) == 1 ? XM_VERIFY_OK : chain_reason(X509_STORE_CTX_get_error(ctx));
	if (r == XM_VERIFY_OK && X509_STORE_CTX_get_error(ctx) != X509_V_OK)
		r = XM_VERIFY_CHAIN_INVALID;
	X509_STORE_CTX_free(ctx);
	if (r != XM_VERIFY_OK)
		return r;
	/* TLS signs with the leaf's key: a key usage that leaves out digitalSignature forbids that. */
	if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
		return XM_VERIFY_BAD_USAGE;
	return leaf_identity(leaf, trust_domain, id);
}

enum xm_verify_reason verify_peer(const struct xm_trust_bundle *b, X509 *leaf, STACK_OF(X509) * untrusted,
				  const char *trust_domain, int64_t now, enum xm_peer_role role,
				  struct xm_spiffe_id *out)
{
	struct xm_spiffe_id id;
	enum xm_verify_reason r = check(b, leaf, untrusted, trust_domain, now, role, &id);

	ERR_clear_error();
	if (r != XM_VERIFY_OK) {
		atomic_fetch_add_explicit(&failures[r], 1, memory_order_relaxed);
		return r;
	}
	if (out)
		*out = id;
	return XM_VERIFY_OK;
}

/* PEM certificates in data, or concatenated DER ones, into certs; the number read. */
static int read_certs(const uint8_t *data, size_t len, X509 **certs, int max)
{
	int n = 0;

	if (len > INT32_MAX)
		return 0;
	if (len >= 11 && !memcmp(data, "-----BEGIN ", 11)) {
		BIO *bio = BIO_new_mem_buf(data, (int)len);

		while (bio && n < max && (certs[n] = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
			n++;
		BIO_free(bio);
		return n;
	}
	while (len && n < max) {
		const unsigned char *p = data;

		certs[n] = d2i_X509(NULL, &p, (long)len);
		if (!certs[n])
			break;
		len -= (size_t)(p - data);
		data = p;
		n++;
	}
	return n;
}

enum xm_verify_reason verify_peer_bytes(const struct xm_trust_bundle *b, const uint8_t *data, size_t len,
					const char *trust_domain, int64_t now, enum xm_peer_role role,
					struct xm_spiffe_id *out)
{
	X509 *certs[MAX_PEER_CERTS];
	STACK_OF(X509) * untrusted;
	enum xm_verify_reason r;
	int n = read_certs(data, len, certs, MAX_PEER_CERTS);

	ERR_clear_error();
	if (n == 0) {
		r = len ? XM_VERIFY_MALFORMED : XM_VERIFY_NO_CERT;
		atomic_fetch_add_explicit(&failures[r], 1, memory_order_relaxed);
		return r;
	}
	untrusted = sk_X509_new_null();
	for (int i = 1; untrusted && i < n; i++)
		if (!sk_X509_push(untrusted, certs[i]))
			break;
	r = verify_peer(b, certs[0], untrusted, trust_domain, now, role, out);
	sk_X509_free(untrusted);
	for (int i = 0; i < n; i++)
		X509_free(certs[i]);
	return r;
}
