// SPDX-License-Identifier: Apache-2.0
/*
 * verify_peer() inside an OpenSSL handshake: the callback replaces OpenSSL's own chain check, so a refused
 * peer fails the handshake with an alert and its reason counted, and an accepted peer's SPIFFE ID stays
 * with the SSL object for the tunnel to read.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "identity/identity.h"

static int peer_idx = -1;
static pthread_once_t peer_idx_once = PTHREAD_ONCE_INIT;

static void free_peer(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

static void make_idx(void)
{
	peer_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_peer);
}

static int alert_of(enum xm_verify_reason r)
{
	switch (r) {
	case XM_VERIFY_NO_CERT:
		return X509_V_ERR_APPLICATION_VERIFICATION; /* OpenSSL's own check asks for a certificate first */
	case XM_VERIFY_EXPIRED:
		return X509_V_ERR_CERT_HAS_EXPIRED;
	case XM_VERIFY_NOT_YET_VALID:
		return X509_V_ERR_CERT_NOT_YET_VALID;
	case XM_VERIFY_UNKNOWN_CA:
		return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
	case XM_VERIFY_BAD_SIGNATURE:
		return X509_V_ERR_CERT_SIGNATURE_FAILURE;
	default:
		return X509_V_ERR_APPLICATION_VERIFICATION;
	}
}

int verify_tls_callback(X509_STORE_CTX *x, void *arg)
{
	const struct xm_tls_peer_policy *p = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct xm_spiffe_id *id;
	enum xm_verify_reason r;

	pthread_once(&peer_idx_once, make_idx);
	if (!ssl || peer_idx < 0 || !(id = malloc(sizeof(*id)))) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_OUT_OF_MEM);
		return 0;
	}
	r = verify_peer(p->bundle, X509_STORE_CTX_get0_cert(x), X509_STORE_CTX_get0_untrusted(x), p->trust_domain,
			(int64_t)time(NULL), p->role, id);
	if (r != XM_VERIFY_OK) {
		free(id);
		X509_STORE_CTX_set_error(x, alert_of(r));
		return 0;
	}
	free(SSL_get_ex_data(ssl, peer_idx));
	if (!SSL_set_ex_data(ssl, peer_idx, id)) {
		free(id);
		X509_STORE_CTX_set_error(x, X509_V_ERR_OUT_OF_MEM);
		return 0;
	}
	X509_STORE_CTX_set_error(x, X509_V_OK);
	return 1;
}

const struct xm_spiffe_id *verify_tls_peer(const SSL *ssl)
{
	pthread_once(&peer_idx_once, make_idx);
	return peer_idx < 0 ? NULL : SSL_get_ex_data(ssl, peer_idx);
}
