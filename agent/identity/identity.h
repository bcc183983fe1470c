/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workload identities (docs/mtls.md): SPIFFE IDs, the CA that mints certificates for this node's pods (Istio's
 * plug-in CA files, or a root the agent generates once), certificates as immutable refcounted objects, the
 * trust bundle (several roots) and the verification of a peer's chain. OpenSSL 3 does all crypto and ASN.1.
 *
 * Threads: a certificate, a bundle and the CA are read-only once built and may be shared by any thread. The
 * store (identity_store_*) is written by the control loop only; any thread takes certificates from it with a
 * reference and keeps them as long as it likes (a renewal publishes a new object, never edits one).
 *
 * For a TLS user (the HBONE tunnel): cert_use(cert, ssl) presents a workload's certificate and chain;
 * verify_tls_callback checks the peer in the handshake, and verify_tls_peer(ssl) tells who it was.
 */
#ifndef XMESH_IDENTITY_H
#define XMESH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define XM_SPIFFE_MAX		2048 /* bytes of a SPIFFE ID, the spec's limit */
#define XM_TRUST_DOMAIN_MAX	255
#define XM_DEFAULT_TRUST_DOMAIN "cluster.local"
#define XM_DEFAULT_CERT_TTL_S	(24 * 3600)
#define XM_DEFAULT_STATE_DIR	"/var/lib/xmesh"

/* ---- SPIFFE IDs (spiffe.c) ---- */

struct xm_spiffe_id {
	char uri[XM_SPIFFE_MAX + 1];
	char trust_domain[XM_TRUST_DOMAIN_MAX + 1];
	/* Istio's form /ns/<ns>/sa/<sa>; both "" for any other path. */
	char ns[64];
	char sa[256];
};

/*
 * Strict parse of a SPIFFE ID (len bytes, no NUL needed): scheme "spiffe" in lower case, a trust domain of
 * [a-z0-9.-_], a path of one or more segments of [a-zA-Z0-9.-_] (no empty, "." or ".." segment, no trailing
 * slash), no port, user info, query, fragment or percent-encoding. Returns 0, or -EINVAL with *why (a static
 * string) saying what is wrong; out is filled only on success.
 */
int spiffe_parse(const char *s, size_t len, struct xm_spiffe_id *out, const char **why);
bool spiffe_trust_domain_valid(const char *td);
/* spiffe://<td>/ns/<ns>/sa/<sa> (sa "" → "default"). Returns 0, -EINVAL (a bad part) or -ENAMETOOLONG. */
int spiffe_format(char *buf, size_t len, const char *td, const char *ns, const char *sa);

/* ---- Certificates (certs.c) ---- */

/* A workload's key, leaf certificate and the chain sent after it; immutable, refcounted. */
struct xm_cert;

struct xm_cert *cert_get(struct xm_cert *c);
void cert_put(struct xm_cert *c);
X509 *cert_leaf(const struct xm_cert *c);
EVP_PKEY *cert_key(const struct xm_cert *c);
STACK_OF(X509) * cert_chain(const struct xm_cert *c); /* intermediates after the leaf; may be empty */
const char *cert_spiffe(const struct xm_cert *c);
const char *cert_serial(const struct xm_cert *c); /* hex, upper case */
int64_t cert_not_before(const struct xm_cert *c); /* Unix seconds */
int64_t cert_not_after(const struct xm_cert *c);
int64_t cert_renew_at(const struct xm_cert *c); /* half-way from its issue to not_after */
/* ca_id of the CA that minted it (32 bytes). */
const uint8_t *cert_issuer_id(const struct xm_cert *c);
/* Presents c on ssl (certificate, key, chain). Returns 0 or -EINVAL. */
int cert_use(const struct xm_cert *c, SSL *ssl);
/* "AB:CD:…" SHA-256 of x's DER; buf holds at least XM_FINGERPRINT_LEN bytes. */
#define XM_FINGERPRINT_LEN (32 * 3)
void cert_fingerprint(X509 *x, char *buf);

/* ---- Trust bundle and peer verification (verify.c) ---- */

/* The roots a peer's chain must reach; immutable, refcounted. */
struct xm_trust_bundle;

/* Every certificate in pem (at least one; each must be a CA). NULL with a message in err. */
struct xm_trust_bundle *bundle_from_pem(const char *pem, size_t len, char *err, size_t errlen);
struct xm_trust_bundle *bundle_get(struct xm_trust_bundle *b);
void bundle_put(struct xm_trust_bundle *b);
size_t bundle_n_roots(const struct xm_trust_bundle *b);
X509 *bundle_root(const struct xm_trust_bundle *b, size_t i);
const char *bundle_root_fingerprint(const struct xm_trust_bundle *b, size_t i);
X509_STORE *bundle_store(const struct xm_trust_bundle *b);
/* Adds b's roots to st (those already there stay once). 0 or -ENOMEM. */
int bundle_add_roots(const struct xm_trust_bundle *b, X509_STORE *st);

enum xm_verify_reason {
	XM_VERIFY_OK = 0,
	XM_VERIFY_NO_CERT,	      /* the peer sent none */
	XM_VERIFY_MALFORMED,	      /* does not parse, or a duplicated extension */
	XM_VERIFY_UNKNOWN_CA,	      /* does not chain to a root of the bundle */
	XM_VERIFY_EXPIRED,	      /* the leaf or a CA on its chain */
	XM_VERIFY_NOT_YET_VALID,      /* the leaf or a CA on its chain */
	XM_VERIFY_BAD_SIGNATURE,      /* a signature on the chain does not verify */
	XM_VERIFY_BAD_USAGE,	      /* the leaf is a CA, or its key usage forbids TLS for that role */
	XM_VERIFY_CHAIN_INVALID,      /* any other chain error (path length, a CA that is not one, …) */
	XM_VERIFY_NO_URI_SAN,	      /* no URI subject alternative name */
	XM_VERIFY_MANY_URI_SANS,      /* more than one */
	XM_VERIFY_BAD_SPIFFE_ID,      /* the URI is not a SPIFFE ID */
	XM_VERIFY_WRONG_TRUST_DOMAIN, /* a SPIFFE ID of another trust domain */
	XM_VERIFY_N_REASONS,
};

enum xm_peer_role {
	XM_PEER_CLIENT, /* we are the server: the leaf must allow clientAuth */
	XM_PEER_SERVER, /* we are the client: serverAuth */
};

/* "unknown_ca", …: the metric label of a reason. */
const char *verify_reason_name(enum xm_verify_reason r);

/*
 * Checks a peer's certificate: it chains to b through untrusted (may be NULL), every certificate is valid at
 * now (Unix seconds), the leaf is no CA and may be used for role, and it holds exactly one URI SAN that is a
 * SPIFFE ID of trust_domain. Returns XM_VERIFY_OK with *out filled (out may be NULL), or the reason, which is
 * also counted (verify_failures).
 */
enum xm_verify_reason verify_peer(const struct xm_trust_bundle *b, X509 *leaf, STACK_OF(X509) * untrusted,
				  const char *trust_domain, int64_t now, enum xm_peer_role role,
				  struct xm_spiffe_id *out);
/* The same from bytes: PEM certificates, or concatenated DER ones; the first is the leaf (at most 16). */
enum xm_verify_reason verify_peer_bytes(const struct xm_trust_bundle *b, const uint8_t *data, size_t len,
					const char *trust_domain, int64_t now, enum xm_peer_role role,
					struct xm_spiffe_id *out);
/* Refusals counted since start, by reason (process-wide). */
uint64_t verify_failures(enum xm_verify_reason r);

/* ---- The same check in a TLS handshake (verify_tls.c) ---- */

struct xm_tls_peer_policy {
	const struct xm_trust_bundle *bundle; /* held by the caller while SSL objects use the policy */
	const char *trust_domain;
	enum xm_peer_role role;
};

/*
 * SSL_CTX_set_cert_verify_callback(ctx, verify_tls_callback, &policy), with SSL_VERIFY_PEER (and, on a
 * server, SSL_VERIFY_FAIL_IF_NO_PEER_CERT): verify_peer() at the real clock replaces OpenSSL's chain check,
 * so a refused peer fails the handshake (its reason counted); an accepted one's ID is verify_tls_peer(ssl).
 */
int verify_tls_callback(X509_STORE_CTX *x, void *policy);
/* The verified peer's SPIFFE ID after a handshake, owned by ssl; NULL when none was verified. */
const struct xm_spiffe_id *verify_tls_peer(const SSL *ssl);

/* ---- The CA (ca.c) ---- */

struct xm_ca;

struct xm_ca_opts {
	const char *ca_dir;    /* --ca-dir: Istio's plug-in layout; NULL: the generated root */
	const char *state_dir; /* where the generated root lives (<state_dir>/ca), when ca_dir is NULL */
};

/*
 * Loads the plug-in CA (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), or the root generated
 * under state_dir, generating it (ECDSA P-256, key file 0600) if there is none yet. Checks that the key
 * matches, the signing certificate is a CA valid at now and chains to root-cert.pem. NULL with a message in
 * err (never any key material).
 */
struct xm_ca *ca_open(const struct xm_ca_opts *o, int64_t now, char *err, size_t errlen);
void ca_free(struct xm_ca *ca);
/* The roots peers are checked against (the CA's reference: bundle_get to keep it beyond ca_free). */
struct xm_trust_bundle *ca_bundle(const struct xm_ca *ca);
/* Where the CA came from ("--ca-dir /x" or "generated root in /var/lib/xmesh/ca"), for logs and status. */
const char *ca_source(const struct xm_ca *ca);
int64_t ca_not_after(const struct xm_ca *ca);
/* SHA-256 of the signing certificate's DER (32 bytes), the same as cert_issuer_id of what it mints. */
const uint8_t *ca_id(const struct xm_ca *ca);
/* Did ca (its signing certificate, not merely its key or name) mint c? */
bool ca_issued(const struct xm_ca *ca, const struct xm_cert *c);
/* Do a and b sign with the same certificate? */
bool ca_same_signer(const struct xm_ca *a, const struct xm_ca *b);

/*
 * A new certificate for spiffe_uri: a fresh ECDSA P-256 key, one URI SAN, digitalSignature and
 * keyEncipherment (Istio's workload key usage), serverAuth and clientAuth, a random 128-bit serial, valid
 * from a little before now for ttl_s seconds (never beyond the CA's own expiry). NULL with *err set.
 */
struct xm_cert *ca_mint(struct xm_ca *ca, const char *spiffe_uri, int64_t now, uint32_t ttl_s, int *err);

/* ---- Watching the plug-in CA's files (ca_watch.c) ---- */

/*
 * What stat() says of the four files of dir (device, inode, size, change and modification times, following
 * symlinks, so Kubernetes' atomic ..data swap of a mounted secret changes it too), folded into one value; an
 * absent file counts too. Equal stamps: nothing was written in between (to the resolution of the file
 * system's timestamps: nanoseconds on ext4, xfs, tmpfs).
 */
uint64_t ca_files_stamp(const char *dir);

/* ---- This node's identities (store.c) ---- */

struct xm_identity_store;

struct xm_identity_store *identity_store_new(void);
void identity_store_free(struct xm_identity_store *s);

struct xm_store_sync_result {
	size_t minted, renewed, dropped, failed;
	size_t reissued; /* of renewed: because their issuer is no longer the CA */
};

/*
 * Control loop: the store holds exactly the identities uris[0..n) (duplicates allowed) from now on: mints
 * missing ones, renews those whose renew time has come or that another CA minted (after a CA reload: counted
 * in renewed, and in reissued), forgets the others. A failed mint keeps the old
 * certificate (if any) and is retried next time. Returns 0 or -ENOMEM (the store unchanged then).
 */
int identity_store_sync(struct xm_identity_store *s, struct xm_ca *ca, const char *const *uris, size_t n, int64_t now,
			uint32_t ttl_s, struct xm_store_sync_result *res);
/* Grows with every change of the store's certificates (a mint, a renewal, a drop): a poll for changes. Any thread. */
uint64_t identity_store_generation(struct xm_identity_store *s);
/* The earliest renew time in the store (INT64_MAX when empty). Control loop. */
int64_t identity_store_next_renewal(const struct xm_identity_store *s);
/* The current certificate of uri with a reference (cert_put when done), or NULL. Any thread. */
struct xm_cert *identity_store_get(struct xm_identity_store *s, const char *uri);
/* Every certificate, sorted by identity, from one consistent table. Any thread. */
void identity_store_each(struct xm_identity_store *s, void (*fn)(void *ctx, const struct xm_cert *c), void *ctx);
size_t identity_store_count(struct xm_identity_store *s);
/*
 * The trust bundle that goes with the store's certificates: the CA's root-cert.pem, replaced when the CA is
 * reloaded (control loop), so that the tunnel learns of a new root without a new config. get: a reference
 * (bundle_put when done), or NULL before the first set. Any thread.
 */
void identity_store_set_bundle(struct xm_identity_store *s, struct xm_trust_bundle *b);
struct xm_trust_bundle *identity_store_bundle(struct xm_identity_store *s);

#endif
