/* SPDX-License-Identifier: Apache-2.0 */
/* What the identity module's files share and its users do not see: the certificate object's layout. */
#ifndef XMESH_IDENTITY_INTERNAL_H
#define XMESH_IDENTITY_INTERNAL_H

#include <stdatomic.h>

#include "identity/identity.h"

struct xm_cert {
	atomic_uint refs;
	EVP_PKEY *key;
	X509 *leaf;
	STACK_OF(X509) * chain;
	int64_t not_before, not_after, renew_at;
	char serial[2 * 20 + 1];
	char spiffe[XM_SPIFFE_MAX + 1];
	uint8_t issuer[32]; /* SHA-256 of the signing CA certificate's DER (ca_issued) */
};

/* Takes key, leaf and chain (each with one reference the certificate now owns). NULL: nothing was taken. */
struct xm_cert *cert_new(EVP_PKEY *key, X509 *leaf, STACK_OF(X509) * chain, const char *spiffe, int64_t issued_at);

/* ASN1_TIME → Unix seconds; -1 when it does not convert. */
int64_t asn1_time_unix(const ASN1_TIME *t);

#endif
