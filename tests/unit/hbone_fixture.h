/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE tests' world: a root CA and leaf certificates with SPIFFE URI SANs made with OpenSSL's APIs,
 * the verify callback a caller would give (the leaf's URI SAN, checked against the expected identity), an
 * echo backend on 127.0.0.1 served by the same loop, and a loop driver with a deadline.
 */
#ifndef XMESH_TEST_HBONE_FIXTURE_H
#define XMESH_TEST_HBONE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct xm_loop;

struct hbt_cert {
	X509 *cert;
	EVP_PKEY *key;
};

/* A self-signed ECDSA P-256 CA. */
struct hbt_cert hbt_ca_new(const char *cn);
/* A leaf for uri (a SPIFFE ID) signed by ca: client and server auth. */
struct hbt_cert hbt_leaf_new(const struct hbt_cert *ca, const char *uri);
void hbt_cert_free(struct hbt_cert *c);
/* A trust store holding ca. */
X509_STORE *hbt_store(const struct hbt_cert *ca);
/* Writes DIR/NAME.pem (the certificate) and DIR/NAME.key. */
void hbt_write_pem(const char *dir, const char *name, const struct hbt_cert *c);

/* hbone_verify_fn: the leaf's URI SAN is the peer id; when expected is set it must be equal. */
int hbt_verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id, size_t peer_id_len);

/* A listening non-blocking TCP socket on 127.0.0.1 (port 0 picks one); its address in *addr. */
int hbt_listen(struct sockaddr_storage *addr);
/* The same on [::1]. */
int hbt_listen6(struct sockaddr_storage *addr);
/* An address on 127.0.0.1 where nothing listens. */
void hbt_closed_port(struct sockaddr_storage *addr);

/* The echo backend on the loop: every byte received goes back, reading pauses while writing is blocked. */
struct hbt_echo;
struct hbt_echo *hbt_echo_start(struct xm_loop *loop, struct sockaddr_storage *addr);
/* The same on [::1]. */
struct hbt_echo *hbt_echo_start6(struct xm_loop *loop, struct sockaddr_storage *addr);
void hbt_echo_stop(struct hbt_echo *e);
size_t hbt_echo_connections(const struct hbt_echo *e);

/* Runs the loop until cond(arg) is true (checked every ms) or timeout_ms passed: cond's last answer. */
bool hbt_run_until(struct xm_loop *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms);
/* Runs the loop for ms. */
void hbt_run_for(struct xm_loop *loop, uint64_t ms);

/* Deterministic test bytes: byte i of stream seed. */
static inline uint8_t hbt_byte(uint64_t seed, uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull + seed;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i & 7) * 8));
}

#endif
