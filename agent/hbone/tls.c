// SPDX-License-Identifier: Apache-2.0
/*
 * TLS for HBONE: TLS 1.3 only, ALPN "h2" required on both sides, the peer's chain verified against the
 * caller's trust store and then handed to the caller's verify callback, which names the peer (its SPIFFE
 * identity) or refuses it. The server requires a client certificate.
 */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "hbone/internal.h"

static const unsigned char alpn_h2[] = { 2, 'h', '2' };

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl, (void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_h2, sizeof(alpn_h2), in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol: HBONE speaks h2 only */
	return SSL_TLSEXT_ERR_OK;
}

static int verify_chain(X509_STORE_CTX *xs, void *arg)
{
	const struct hb_verify *v = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hb_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);

	if (!c || !leaf || X509_verify_cert(xs) <= 0)
		return 0;
	if (v->fn(v->ctx, c->side == HBONE_SIDE_CLIENT ? c->dst_id : NULL, leaf, X509_STORE_CTX_get0_chain(xs),
		  c->peer_id, sizeof(c->peer_id)) < 0) {
		c->peer_id[0] = '\0';
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

SSL_CTX *hb_tls_ctx_new(bool server, X509_STORE *trust, const struct hb_verify *v)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	SSL_CTX_set1_cert_store(ctx, trust);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_chain, (void *)v);
	if (server)
		SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	else if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *hb_tls_new(SSL_CTX *ctx, struct hb_conn *c)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		return NULL;
	if (!SSL_set_fd(ssl, c->fd)) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_app_data(ssl, c);
	if (c->side == HBONE_SIDE_SERVER)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	return ssl;
}

int hb_tls_use_cert(SSL *ssl, X509 *cert, EVP_PKEY *key, STACK_OF(X509) * chain)
{
	if (!cert || !key || SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1 ||
	    SSL_check_private_key(ssl) != 1)
		return -EINVAL;
	if (chain && !SSL_set1_chain(ssl, chain))
		return -EINVAL;
	return 0;
}
