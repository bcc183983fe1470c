// SPDX-License-Identifier: Apache-2.0
/*
 * TLS for HBONE: TLS 1.3 only, ALPN "h2" required on both sides, the peer's chain verified against the
 * caller's trust store and then handed to the caller's verify callback, which names the peer (its SPIFFE
 * identity) or refuses it. The server requires a client certificate.
 *
 * Session resumption (docs/mtls.md "Resumption"): the server issues one stateless ticket per handshake,
 * encrypted under keys of its own (AES-256-CBC + HMAC-SHA256, random, in memory only, a new one every
 * HBONE_TICKET_KEY_ROTATE_S, the previous one kept for decryption). A resumed handshake sends no certificate,
 * so OpenSSL does not call the verify callback: the peer's certificate kept with the session is checked again
 * (hb_tls_recheck) before a session is offered (client) or accepted (server), and the peer's identity of a
 * resumed connection is what that check returned. A ticket is bound to the certificates of both ends: the
 * server accepts it only while it would present the certificate it presented then, the client offers it only
 * while presenting the certificate it presented then, and it lives at most until either certificate expires.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/loop.h"
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

/*
 * ---- the chain checks this context's trust store passed, kept (docs/mtls.md "Resumption") ----
 *
 * A resumed handshake checks the peer's certificate from the session again (hb_tls_recheck): the chain against
 * the context's store, then the caller's callback. The first part depends only on the certificates, the store
 * (which the caller does not change while the context lives: the agent makes a new one per trust bundle) and
 * the time; so a chain this store verified (in a full handshake or a re-check) is kept with the chain that
 * X509_verify_cert built, and for HBONE_TICKET_LIFETIME_S it is not verified again: only the validity periods of
 * that chain are compared with the verification time. The callback runs every time.
 */
#define MEMO_MAX 256

struct memo {
	uint8_t key[32];	       /* SHA-256 over the SHA-256 of the leaf and of each other certificate sent */
	X509_STORE *store;	       /* referenced */
	STACK_OF(X509) * chain;	       /* what X509_verify_cert built, leaf first */
	int64_t not_before, not_after; /* the latest notBefore and the earliest notAfter of chain */
	uint64_t until_ms;	       /* kept until then (monotonic); 0: free */
};

struct memos {
	pthread_mutex_t mu;
	struct memo e[MEMO_MAX];
	unsigned next; /* the slot replaced next when none is free */
	atomic_ullong hits;
};

static int memo_idx = -1;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;

static void memo_clear(struct memo *m)
{
	X509_STORE_free(m->store);
	sk_X509_pop_free(m->chain, X509_free);
	memset(m, 0, sizeof(*m));
}

static void memos_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct memos *ms = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!ms)
		return;
	for (int i = 0; i < MEMO_MAX; i++)
		memo_clear(&ms->e[i]);
	pthread_mutex_destroy(&ms->mu);
	OPENSSL_free(ms);
}

static void memo_index(void)
{
	memo_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, memos_free);
}

/* The memo key of leaf with the other certificates in untrusted (the leaf, when there too, counts once). */
static int memo_key(X509 *leaf, STACK_OF(X509) * untrusted, uint8_t key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) && X509_digest(leaf, EVP_sha256(), d, &n) &&
		 EVP_DigestUpdate(md, d, n);

	for (int i = 0; ok && untrusted && i < sk_X509_num(untrusted); i++) {
		X509 *x = sk_X509_value(untrusted, i);

		if (!X509_cmp(x, leaf))
			continue;
		ok = X509_digest(x, EVP_sha256(), d, &n) && EVP_DigestUpdate(md, d, n);
	}
	ok = ok && EVP_DigestFinal_ex(md, key, &n) && n == 32;
	EVP_MD_CTX_free(md);
	return ok;
}

static int64_t asn1_unix(const ASN1_TIME *t, int64_t fail)
{
	struct tm tm;

	return t && ASN1_TIME_to_tm(t, &tm) ? (int64_t)timegm(&tm) : fail;
}

/* The verification time of xs: the one its parameters set, or now. */
static int64_t check_time(X509_STORE_CTX *xs)
{
	const X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(xs);

	if (X509_VERIFY_PARAM_get_flags(p) & X509_V_FLAG_USE_CHECK_TIME)
		return (int64_t)X509_VERIFY_PARAM_get_time(p);
	return (int64_t)time(NULL);
}

/* Keeps the chain xs built for leaf (after X509_verify_cert succeeded on it). */
static void memo_put(SSL_CTX *ctx, X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE_CTX *xs)
{
	struct memos *ms = memo_idx >= 0 ? SSL_CTX_get_ex_data(ctx, memo_idx) : NULL;
	X509_STORE *store = X509_STORE_CTX_get0_store(xs);
	STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(xs);
	struct memo m = { .not_before = INT64_MIN, .not_after = INT64_MAX };
	uint64_t now = loop_now_ms();
	struct memo *slot = NULL;

	if (!ms || !store || !built || !memo_key(leaf, untrusted, m.key))
		return;
	for (int i = 0; i < sk_X509_num(built); i++) {
		X509 *x = sk_X509_value(built, i);
		int64_t nb = asn1_unix(X509_get0_notBefore(x), INT64_MAX),
			na = asn1_unix(X509_get0_notAfter(x), INT64_MIN);

		if (nb > m.not_before)
			m.not_before = nb;
		if (na < m.not_after)
			m.not_after = na;
	}
	if (m.not_before >= m.not_after || !X509_STORE_up_ref(store))
		return;
	m.store = store;
	m.chain = X509_chain_up_ref(built);
	if (!m.chain) {
		X509_STORE_free(store);
		return;
	}
	m.until_ms = now + (uint64_t)HBONE_TICKET_LIFETIME_S * 1000;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < MEMO_MAX && !slot; i++) {
		struct memo *e = &ms->e[i];

		if (e->until_ms && !memcmp(e->key, m.key, 32) && e->store == store)
			slot = e; /* the same chain again: the newer check replaces it */
	}
	for (int i = 0; i < MEMO_MAX && !slot; i++)
		if (ms->e[i].until_ms <= now)
			slot = &ms->e[i];
	if (!slot) {
		slot = &ms->e[ms->next];
		ms->next = (ms->next + 1) % MEMO_MAX;
	}
	memo_clear(slot);
	*slot = m;
	pthread_mutex_unlock(&ms->mu);
}

/* The chain the store built for leaf before (referenced, for the caller to free) when it is still valid at t. */
static STACK_OF(X509) * memo_get(SSL_CTX *ctx, X509_STORE *store, X509 *leaf, STACK_OF(X509) * untrusted, int64_t t)
{
	struct memos *ms = memo_idx >= 0 ? SSL_CTX_get_ex_data(ctx, memo_idx) : NULL;
	STACK_OF(X509) *chain = NULL;
	uint64_t now = loop_now_ms();
	uint8_t key[32];

	if (!ms || !memo_key(leaf, untrusted, key))
		return NULL;
	pthread_mutex_lock(&ms->mu);
	for (int i = 0; i < MEMO_MAX; i++) {
		struct memo *e = &ms->e[i];

		if (!e->until_ms || memcmp(e->key, key, 32) || e->store != store)
			continue;
		if (e->until_ms > now && t >= e->not_before && t < e->not_after)
			chain = X509_chain_up_ref(e->chain);
		break;
	}
	pthread_mutex_unlock(&ms->mu);
	if (chain)
		atomic_fetch_add(&ms->hits, 1);
	return chain;
}

unsigned long long hb_tls_memo_hits(SSL_CTX *ctx)
{
	struct memos *ms = memo_idx >= 0 ? SSL_CTX_get_ex_data(ctx, memo_idx) : NULL;

	return ms ? atomic_load(&ms->hits) : 0;
}

static int verify_chain(X509_STORE_CTX *xs, void *arg)
{
	const struct hb_verify *v = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hb_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);

	if (!c || !leaf || X509_verify_cert(xs) <= 0)
		return 0;
	memo_put(SSL_get_SSL_CTX(ssl), leaf, X509_STORE_CTX_get0_untrusted(xs), xs);
	if (v->fn(v->ctx, c->side == HBONE_SIDE_CLIENT ? c->dst_id : NULL, leaf, X509_STORE_CTX_get0_chain(xs),
		  c->peer_id, sizeof(c->peer_id)) < 0) {
		c->peer_id[0] = '\0';
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	/* what the peer sent (leaf first), for the tickets of this session */
	hb_conn_set_peer(c, leaf, X509_STORE_CTX_get0_untrusted(xs));
	return 1;
}

void hb_conn_set_peer(struct hb_conn *c, X509 *leaf, STACK_OF(X509) * chain)
{
	X509 *old_leaf = c->peer_leaf;
	STACK_OF(X509) *old_chain = c->peer_chain;

	c->peer_leaf = leaf && X509_up_ref(leaf) ? leaf : NULL;
	c->peer_chain = chain ? X509_chain_up_ref(chain) : NULL;
	X509_free(old_leaf);
	sk_X509_pop_free(old_chain, X509_free);
}

int hb_tls_recheck(SSL *ssl, const struct hb_verify *v, struct hb_conn *c, X509 *leaf, STACK_OF(X509) * untrusted,
		   char *peer_id, size_t peer_id_len)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	STACK_OF(X509) *kept = NULL;
	int rc = -EACCES;

	peer_id[0] = '\0';
	if (!xs || !leaf || !store)
		goto out;
	/* as ssl_verify_cert_chain() sets it up for a full handshake, without the callback's side effects */
	if (!X509_STORE_CTX_init(xs, store, leaf, untrusted) ||
	    !X509_STORE_CTX_set_default(xs, SSL_is_server(ssl) ? "ssl_client" : "ssl_server") ||
	    !X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(xs), SSL_get0_param(ssl)))
		goto out;
	/* a chain this store verified before and still valid now is not verified again (see memo_put) */
	kept = memo_get(ctx, store, leaf, untrusted, check_time(xs));
	if (!kept) {
		ERR_set_mark();
		if (X509_verify_cert(xs) <= 0) {
			ERR_pop_to_mark();
			goto out;
		}
		ERR_pop_to_mark();
		memo_put(ctx, leaf, untrusted, xs);
	}
	if (v->fn(v->ctx, c->side == HBONE_SIDE_CLIENT ? c->dst_id : NULL, leaf,
		  kept ? kept : X509_STORE_CTX_get0_chain(xs), peer_id, peer_id_len) < 0 ||
	    !peer_id[0]) {
		peer_id[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	sk_X509_pop_free(kept, X509_free);
	X509_STORE_CTX_free(xs);
	return rc;
}

/* ---- the server's ticket keys ---- */

struct ticket_key {
	unsigned char name[16], aes[32], hmac[32];
};

struct ticket_keys {
	struct ticket_key cur, prev;
	bool have_prev;
	uint64_t since_ms; /* cur was made then (monotonic) */
};

static int keys_idx = -1;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void keys_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr) {
		OPENSSL_cleanse(ptr, sizeof(struct ticket_keys));
		OPENSSL_free(ptr);
	}
}

static void keys_index(void)
{
	keys_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, keys_free);
}

static int key_new(struct ticket_key *k)
{
	return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 &&
	       RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1;
}

static int keys_rotate(struct ticket_keys *tk)
{
	struct ticket_key next;

	if (!key_new(&next))
		return 0;
	tk->prev = tk->cur;
	tk->have_prev = true;
	tk->cur = next;
	tk->since_ms = loop_now_ms();
	OPENSSL_cleanse(&next, sizeof(next));
	return 1;
}

/*
 * A key encrypts for one period and decrypts for one more (a ticket lives at most HBONE_TICKET_LIFETIME_S, not
 * longer than a period): rotated at the first use after its period, when the previous one is forgotten.
 */
static void keys_age(struct ticket_keys *tk)
{
	if (loop_now_ms() - tk->since_ms >= (uint64_t)HBONE_TICKET_KEY_ROTATE_S * 1000)
		keys_rotate(tk);
}

void hb_tls_rotate_ticket_key(SSL_CTX *ctx)
{
	struct ticket_keys *tk = keys_idx >= 0 ? SSL_CTX_get_ex_data(ctx, keys_idx) : NULL;

	if (tk)
		keys_rotate(tk);
}

static int mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
	OSSL_PARAM p[3];

	p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	p[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, p);
}

/* OpenSSL's ticket key callback: 1 (use), 2 (decrypted with the previous key: renew), 0 (unknown key), -1. */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_keys *tk = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_idx);
	const struct ticket_key *k;

	if (!tk)
		return -1;
	keys_age(tk);
	if (enc) {
		k = &tk->cur;
		memcpy(key_name, k->name, sizeof(k->name));
		if (RAND_bytes(iv, 16) != 1 || !EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) ||
		    !mac_init(hctx, k))
			return -1;
		return 1;
	}
	if (!memcmp(key_name, tk->cur.name, 16))
		k = &tk->cur;
	else if (tk->have_prev && !memcmp(key_name, tk->prev.name, 16))
		k = &tk->prev;
	else
		return 0;
	if (!mac_init(hctx, k) || !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv))
		return -1;
	return k == &tk->cur ? 1 : 2;
}

/* ---- what a ticket carries, and the checks when one comes back ---- */

#define APPDATA_VERSION 1

int hb_ticket_appdata_encode(uint8_t *buf, size_t cap, const uint8_t own_sha256[32], X509 *leaf, STACK_OF(X509) * chain)
{
	size_t len = 33;
	int i, n = 0;

	if (cap < len)
		return -ENOSPC;
	buf[0] = APPDATA_VERSION;
	memcpy(buf + 1, own_sha256, 32);
	for (i = 0; chain && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		int dl;
		unsigned char *p;

		if (leaf && !X509_cmp(x, leaf))
			continue;
		if (++n > HB_TICKET_APPDATA_CERTS)
			return -ENOSPC;
		dl = i2d_X509(x, NULL);
		if (dl <= 0 || (size_t)dl > cap - len)
			return -ENOSPC;
		p = buf + len;
		if (i2d_X509(x, &p) != dl)
			return -ENOSPC;
		len += (size_t)dl;
	}
	return (int)len;
}

int hb_ticket_appdata_parse(const uint8_t *data, size_t len, uint8_t own_sha256[32], STACK_OF(X509) * *chain)
{
	STACK_OF(X509) * sk;
	const unsigned char *p;
	size_t off = 33;

	*chain = NULL;
	if (!data || len < 33 || len > HB_TICKET_APPDATA_MAX || data[0] != APPDATA_VERSION)
		return -EINVAL;
	sk = sk_X509_new_null();
	if (!sk)
		return -EINVAL;
	memcpy(own_sha256, data + 1, 32);
	while (off < len) {
		X509 *x;

		p = data + off;
		x = d2i_X509(NULL, &p, (long)(len - off));
		if (!x || p <= data + off || sk_X509_num(sk) >= HB_TICKET_APPDATA_CERTS || !sk_X509_push(sk, x)) {
			X509_free(x);
			sk_X509_pop_free(sk, X509_free);
			return -EINVAL;
		}
		off = (size_t)(p - data);
	}
	*chain = sk;
	return 0;
}

/* Unix seconds of x's notAfter (INT64_MIN when unreadable). */
static int64_t not_after(const X509 *x)
{
	struct tm tm;

	if (!x || !ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return INT64_MIN;
	return (int64_t)timegm(&tm);
}

static int own_digest(SSL *ssl, uint8_t md[32])
{
	X509 *own = SSL_get_certificate(ssl);
	unsigned int n = 0;

	return own && X509_digest(own, EVP_sha256(), md, &n) && n == 32;
}

/*
 * Server, before a ticket is made: the certificate we present and the client's chain go into it, and its
 * lifetime ends at the latest when one of those certificates expires.
 */
static int ticket_gen(SSL *ssl, void *arg)
{
	struct hb_conn *c = SSL_get_app_data(ssl);
	SSL_SESSION *sess = SSL_get0_session(ssl);
	uint8_t md[32], buf[HB_TICKET_APPDATA_MAX];
	int64_t now = (int64_t)time(NULL), end = now + HBONE_TICKET_LIFETIME_S, t;
	int len, i;

	(void)arg;
	if (!c || !sess || !c->peer_leaf || !own_digest(ssl, md))
		return 1; /* a ticket without appdata is never accepted */
	len = hb_ticket_appdata_encode(buf, sizeof(buf), md, c->peer_leaf, c->peer_chain);
	if (len < 0 || !SSL_SESSION_set1_ticket_appdata(sess, buf, (size_t)len))
		return 1;
	t = not_after(SSL_get_certificate(ssl));
	if (t < end)
		end = t;
	t = not_after(c->peer_leaf);
	if (t < end)
		end = t;
	for (i = 0; c->peer_chain && i < sk_X509_num(c->peer_chain); i++) {
		t = not_after(sk_X509_value(c->peer_chain, i));
		if (t < end)
			end = t;
	}
	SSL_SESSION_set_timeout(sess, end > now ? (long)(end - now) : 1);
	return 1;
}

/* Server, a ticket came back decrypted: resume only when the checks of a full handshake pass again. */
static SSL_TICKET_RETURN ticket_dec(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname, size_t keyname_len,
				    SSL_TICKET_STATUS status, void *arg)
{
	const struct hb_verify *v = arg;
	struct hb_conn *c = SSL_get_app_data(ssl);
	const void *ad = NULL;
	size_t adlen = 0;
	uint8_t md[32], was[32];
	STACK_OF(X509) *chain = NULL;
	X509 *leaf;
	int64_t now = (int64_t)time(NULL);

	(void)keyname, (void)keyname_len;
	switch (status) {
	case SSL_TICKET_EMPTY:
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	case SSL_TICKET_NO_DECRYPT: /* another key (rotated out, another process), or garbage */
		if (c)
			hb_count(&c->ctr->tickets_rejected[HBONE_SIDE_SERVER], 1);
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		break;
	default:
		return SSL_TICKET_RETURN_ABORT;
	}
	if (!c)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	leaf = SSL_SESSION_get0_peer(ss);
	if (!leaf || now >= (int64_t)SSL_SESSION_get_time(ss) + (int64_t)SSL_SESSION_get_timeout(ss) ||
	    !SSL_SESSION_get0_ticket_appdata(ss, (void **)&ad, &adlen) ||
	    hb_ticket_appdata_parse(ad, adlen, was, &chain) || !own_digest(ssl, md) || memcmp(md, was, 32) ||
	    hb_tls_recheck(ssl, v, c, leaf, chain, c->resumed_id, sizeof(c->resumed_id))) {
		sk_X509_pop_free(chain, X509_free);
		c->resumed_id[0] = '\0';
		hb_count(&c->ctr->tickets_rejected[HBONE_SIDE_SERVER], 1);
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	{
		/* the leaf first, as a full handshake's verify keeps it */
		STACK_OF(X509) *full = sk_X509_new_null();

		if (full && sk_X509_push(full, leaf)) {
			for (int i = 0; i < sk_X509_num(chain); i++)
				sk_X509_push(full, sk_X509_value(chain, i));
			hb_conn_set_peer(c, leaf, full);
		} else {
			hb_conn_set_peer(c, leaf, chain);
		}
		sk_X509_free(full);
	}
	sk_X509_pop_free(chain, X509_free);
	return SSL_TICKET_RETURN_USE_RENEW;
}

/* Client: a NewSessionTicket arrived. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct hb_conn *c = SSL_get_app_data(ssl);

	return c ? hb_client_ticket_new(c, sess) : 0;
}

#define HB_TLS_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static const unsigned char session_ctx_id[] = "xmesh-hbone-1";

SSL_CTX *hb_tls_ctx_new(bool server, X509_STORE *trust, const struct hb_verify *v)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	struct memos *ms;

	if (!ctx)
		return NULL;
	pthread_once(&memo_once, memo_index);
	ms = OPENSSL_zalloc(sizeof(*ms));
	if (!ms || memo_idx < 0 || pthread_mutex_init(&ms->mu, NULL)) {
		OPENSSL_free(ms);
		goto fail;
	}
	if (!SSL_CTX_set_ex_data(ctx, memo_idx, ms)) {
		memos_free(NULL, ms, NULL, 0, 0, NULL);
		goto fail;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	/*
	 * AES-128-GCM first: 10 AES rounds instead of 14 on the tunnel's bulk data, the same security level the
	 * handshake (X25519, P-256 certificates) gives. Every suite of OpenSSL's default list stays, so a peer
	 * that only takes AES-256 or ChaCha20 (ztunnel's rustls offers and accepts all three) still connects; the
	 * server side picks by its own order, so a client's AES-256-first offer gets AES-128 too.
	 */
	if (!SSL_CTX_set_ciphersuites(ctx, HB_TLS_CIPHERSUITES))
		goto fail;
	if (server)
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set1_cert_store(ctx, trust);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_chain, (void *)v);
	if (server) {
		struct ticket_keys *tk;

		SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
		/* stateless tickets only (no server cache), one per handshake, keys of ours */
		pthread_once(&keys_once, keys_index);
		tk = OPENSSL_zalloc(sizeof(*tk));
		if (keys_idx < 0 || !tk || !key_new(&tk->cur) || !SSL_CTX_set_ex_data(ctx, keys_idx, tk)) {
			keys_free(NULL, tk, NULL, 0, 0, NULL);
			goto fail;
		}
		tk->since_ms = loop_now_ms();
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		if (!SSL_CTX_set_num_tickets(ctx, 1) ||
		    !SSL_CTX_set_session_id_context(ctx, session_ctx_id, sizeof(session_ctx_id) - 1) ||
		    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) ||
		    !SSL_CTX_set_session_ticket_cb(ctx, ticket_gen, ticket_dec, (void *)v))
			goto fail;
		SSL_CTX_set_timeout(ctx, HBONE_TICKET_LIFETIME_S);
	} else {
		if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)))
			goto fail;
		/* sessions go to the pool (client.c), keyed as its connections; OpenSSL keeps none itself */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * TLS records pass through buffers on both sides (docs/mtls.md "Cutting CPU per MB"). OpenSSL writes each
 * 16 KiB record to its write BIO on its own, and a send per record made the tunnel's kernel path run per
 * 16 KiB (a segment pushed, a wakeup and an ACK each, with TCP_NODELAY); the write buffer collects the records
 * of one write round and hb_tls_flush sends them together at its end, so nothing waits in it. Without
 * read-ahead OpenSSL reads a record's header and then its body, two reads per record; the read buffer takes
 * what the socket has in one read and OpenSSL parses the records out of it.
 */
static bool tls_buffer(SSL *ssl, BIO *sock, bool write, struct hb_edge *edge)
{
	BIO *buf = BIO_new(BIO_f_buffer());
	BIO *under = write ? sock : hb_edge_bio(edge); /* reads: buffer -> edge filter (tls_edge.c) -> socket */

	if (!buf || !under || !BIO_up_ref(sock)) {
		BIO_free(buf);
		if (under != sock)
			BIO_free(under);
		return false;
	}
	if (under != sock)
		BIO_push(under, sock); /* the filter holds the reference taken above */
	if ((write ? BIO_set_write_buffer_size(buf, HB_TLS_WBUF) : BIO_set_read_buffer_size(buf, HB_TLS_RBUF)) <= 0) {
		BIO_free_all(under);
		BIO_free(buf);
		return false;
	}
	BIO_push(buf, under); /* the chain holds the reference taken above */
	/* each drops that side's reference to sock, which SSL_set_fd took */
	if (write)
		SSL_set0_wbio(ssl, buf);
	else
		SSL_set0_rbio(ssl, buf);
	return true;
}

static bool tls_buffers(SSL *ssl, struct hb_conn *c)
{
	BIO *sock = SSL_get_rbio(ssl);

	return tls_buffer(ssl, sock, true, NULL) && tls_buffer(ssl, sock, false, &c->edge);
}

int hb_tls_flush(SSL *ssl)
{
	BIO *w = SSL_get_wbio(ssl);

	if (BIO_wpending(w) <= 0)
		return 0;
	if (BIO_flush(w) > 0)
		return 0;
	return BIO_should_retry(w) ? -EAGAIN : -EIO;
}

bool hb_tls_wpending(SSL *ssl)
{
	return ssl && BIO_wpending(SSL_get_wbio(ssl)) > 0;
}

SSL *hb_tls_new(SSL_CTX *ctx, struct hb_conn *c)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		return NULL;
	if (!SSL_set_fd(ssl, c->fd) || !tls_buffers(ssl, c)) {
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
