// SPDX-License-Identifier: Apache-2.0
/*
 * A workload's certificate as one immutable object: key, leaf, chain and what `xmesh certs` shows, shared by
 * reference. A renewal makes a new object; whoever holds the old one keeps it until cert_put.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "identity/internal.h"

int64_t asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

struct xm_cert *cert_new(EVP_PKEY *key, X509 *leaf, STACK_OF(X509) * chain, const char *spiffe, int64_t issued_at)
{
	struct xm_cert *c = calloc(1, sizeof(*c));
	const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
	BIGNUM *bn;
	char *hex;

	if (!c)
		return NULL;
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	if (!hex) {
		free(c);
		return NULL;
	}
	snprintf(c->serial, sizeof(c->serial), "%s", hex);
	OPENSSL_free(hex);
	atomic_init(&c->refs, 1);
	c->key = key;
	c->leaf = leaf;
	c->chain = chain;
	c->not_before = asn1_time_unix(X509_get0_notBefore(leaf));
	c->not_after = asn1_time_unix(X509_get0_notAfter(leaf));
	c->renew_at = issued_at + (c->not_after - issued_at) / 2;
	snprintf(c->spiffe, sizeof(c->spiffe), "%s", spiffe);
	return c;
}

struct xm_cert *cert_get(struct xm_cert *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void cert_put(struct xm_cert *c)
{
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	EVP_PKEY_free(c->key);
	X509_free(c->leaf);
	sk_X509_pop_free(c->chain, X509_free);
	free(c);
}

X509 *cert_leaf(const struct xm_cert *c)
{
	return c->leaf;
}

EVP_PKEY *cert_key(const struct xm_cert *c)
{
	return c->key;
}

STACK_OF(X509) * cert_chain(const struct xm_cert *c)
{
	return c->chain;
}

const char *cert_spiffe(const struct xm_cert *c)
{
	return c->spiffe;
}

const char *cert_serial(const struct xm_cert *c)
{
	return c->serial;
}

int64_t cert_not_before(const struct xm_cert *c)
{
	return c->not_before;
}

int64_t cert_not_after(const struct xm_cert *c)
{
	return c->not_after;
}

int64_t cert_renew_at(const struct xm_cert *c)
{
	return c->renew_at;
}

const uint8_t *cert_issuer_id(const struct xm_cert *c)
{
	return c->issuer;
}

int cert_use(const struct xm_cert *c, SSL *ssl)
{
	/* SSL_use_* take their own references: the SSL outlives nothing of c it needs. */
	if (SSL_use_certificate(ssl, c->leaf) != 1 || SSL_use_PrivateKey(ssl, c->key) != 1 ||
	    SSL_set1_chain(ssl, c->chain) != 1 || SSL_check_private_key(ssl) != 1)
		return -EINVAL;
	return 0;
}

void cert_fingerprint(X509 *x, char *buf)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	buf[0] = '\0';
	if (!X509_digest(x, EVP_sha256(), md, &n))
		return;
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(buf + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
}
