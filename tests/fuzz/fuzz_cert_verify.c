// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: a peer's certificates through the verification path (identity/verify.c), as PEM or
 * concatenated DER. The first byte picks how: 0, verified as sent against a bundle of the fuzzer's own root;
 * 1, the leaf is re-signed by that root first, so arbitrary extensions (SANs, key usage, basic constraints)
 * reach the checks after the chain. Beyond memory safety: an accepted peer has a SPIFFE ID of the expected
 * trust domain that parses again, and every refusal has a named reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "identity/identity.h"

#define TD  "cluster.local"
#define NOW ((int64_t)1800000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xm_trust_bundle *bundle;
static EVP_PKEY *root_key;
static X509 *root;

static void add_ext(X509 *x, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
	if (!e || !X509_add_ext(x, e, -1))
		abort();
	X509_EXTENSION_free(e);
}

static void setup(void)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char err[256], *pem;
	long n;

	root_key = EVP_EC_gen("P-256");
	root = X509_new();
	if (!bio || !root_key || !root)
		abort();
	X509_set_version(root, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(root), 1);
	ASN1_TIME_set(X509_getm_notBefore(root), (time_t)(NOW - 86400));
	ASN1_TIME_set(X509_getm_notAfter(root), (time_t)(NOW + 86400));
	X509_NAME_add_entry_by_txt(X509_get_subject_name(root), "CN", MBSTRING_ASC, (const unsigned char *)"fuzz root",
				   -1, -1, 0);
	X509_set_issuer_name(root, X509_get_subject_name(root));
	X509_set_pubkey(root, root_key);
	add_ext(root, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(root, NID_key_usage, "critical,keyCertSign");
	add_ext(root, NID_subject_key_identifier, "hash");
	if (!X509_sign(root, root_key, EVP_sha256()) || !PEM_write_bio_X509(bio, root))
		abort();
	n = BIO_get_mem_data(bio, &pem);
	bundle = bundle_from_pem(pem, (size_t)n, err, sizeof(err));
	if (!bundle)
		abort();
	BIO_free(bio);
}

static void check(enum xm_verify_reason r, const struct xm_spiffe_id *id)
{
	struct xm_spiffe_id again;

	if ((unsigned)r >= XM_VERIFY_N_REASONS || !strcmp(verify_reason_name(r), "unknown"))
		abort();
	if (r != XM_VERIFY_OK)
		return;
	if (strcmp(id->trust_domain, TD) || spiffe_parse(id->uri, strlen(id->uri), &again, NULL))
		abort();
}

/* The leaf of data re-signed by the fuzzer's root, as DER; NULL if it does not parse. */
static unsigned char *resign(const uint8_t *data, size_t size, int *len)
{
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)size);
	unsigned char *der = NULL;
	int i;

	*len = 0;
	if (!x)
		return NULL;
	/* Its authority key identifier names the seed's CA: without it, the chain is built by name. */
	while ((i = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1)) >= 0)
		X509_EXTENSION_free(X509_delete_ext(x, i));
	if (X509_set_issuer_name(x, X509_get_subject_name(root)) && X509_sign(x, root_key, EVP_sha256()))
		*len = i2d_X509(x, &der);
	X509_free(x);
	return *len > 0 ? der : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xm_spiffe_id id;
	enum xm_verify_reason r;

	if (!bundle)
		setup();
	if (size < 1 || size > 64 * 1024)
		return 0;
	if (data[0] == 1) {
		int len;
		unsigned char *der = resign(data + 1, size - 1, &len);

		if (der) {
			r = verify_peer_bytes(bundle, der, (size_t)len, TD, NOW, XM_PEER_CLIENT, &id);
			check(r, &id);
			OPENSSL_free(der);
		}
		ERR_clear_error();
		return 0;
	}
	r = verify_peer_bytes(bundle, data + 1, size - 1, TD, NOW, data[0] & 2 ? XM_PEER_SERVER : XM_PEER_CLIENT, &id);
	check(r, &id);
	ERR_clear_error();
	return 0;
}
