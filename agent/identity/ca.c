// SPDX-License-Identifier: Apache-2.0
/*
 * The CA that signs this node's workload certificates. Istio's plug-in CA layout (Istio docs, "Plug in CA
 * Certificates"): ca-cert.pem signs, ca-key.pem is its key, root-cert.pem the root(s) workloads trust,
 * cert-chain.pem the intermediates between ca-cert.pem and the root (empty when ca-cert.pem is the root).
 * Without --ca-dir the agent generates a self-signed root once and writes it in the same layout under
 * <state-dir>/ca, so the directory can be copied to other nodes and passed as their --ca-dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/mkdir_p.h"
#include "identity/internal.h"

#define ROOT_TTL_S	  (10LL * 365 * 24 * 3600) /* Istio's self-signed root: 10 years */
#define MAX_FILE	  (1 << 20)
#define BACKDATE_MAX_S	  60 /* clock skew between nodes a new certificate tolerates */
#define ROOT_ORGANIZATION "xmesh"

struct xm_ca {
	X509 *cert;		/* signs */
	EVP_PKEY *key;		/* never logged, never served */
	STACK_OF(X509) * chain; /* sent after each leaf: ca-cert.pem and intermediates, no self-signed root */
	struct xm_trust_bundle *bundle;
	int64_t not_after;
	uint8_t id[32]; /* SHA-256 of cert's DER: which CA minted a certificate (ca_issued) */
	char source[4200];
};

/* A whole file into a NUL-terminated buffer. 0, or -errno (-EFBIG past MAX_FILE). */
static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	*out = NULL;
	*len = 0;
	if (!f)
		return -errno;
	buf = malloc(MAX_FILE + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, MAX_FILE + 1, f);
	if (ferror(f) || n > MAX_FILE) {
		int err = ferror(f) ? -EIO : -EFBIG;

		fclose(f);
		OPENSSL_cleanse(buf, MAX_FILE + 1);
		free(buf);
		return err;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Frees a buffer that may have held key material. */
static void free_secret(char *buf, size_t len)
{
	if (buf)
		OPENSSL_cleanse(buf, len);
	free(buf);
}

static STACK_OF(X509) * read_pem_certs(const char *buf, size_t len)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	X509 *x;

	if (!certs || !bio) {
		BIO_free(bio);
		sk_X509_free(certs);
		return NULL;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		if (!sk_X509_push(certs, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(bio);
	return certs;
}

static bool self_signed(X509 *x)
{
	return X509_self_signed(x, 0) == 1;
}

void ca_free(struct xm_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sk_X509_pop_free(ca->chain, X509_free);
	bundle_put(ca->bundle);
	free(ca);
}

struct xm_trust_bundle *ca_bundle(const struct xm_ca *ca)
{
	return ca->bundle;
}

const char *ca_source(const struct xm_ca *ca)
{
	return ca->source;
}

int64_t ca_not_after(const struct xm_ca *ca)
{
	return ca->not_after;
}

const uint8_t *ca_id(const struct xm_ca *ca)
{
	return ca->id;
}

bool ca_issued(const struct xm_ca *ca, const struct xm_cert *c)
{
	return !memcmp(ca->id, c->issuer, sizeof(ca->id));
}

bool ca_same_signer(const struct xm_ca *a, const struct xm_ca *b)
{
	return !memcmp(a->id, b->id, sizeof(a->id));
}

/* Does ca->cert, with ca->chain, reach the bundle's roots at now? */
static int check_signing_cert(struct xm_ca *ca, int64_t now, char *err, size_t errlen)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok, e;

	if (!ctx || !X509_STORE_CTX_init(ctx, bundle_store(ca->bundle), ca->cert, ca->chain)) {
		X509_STORE_CTX_free(ctx);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
	ok = X509_verify_cert(ctx) == 1;
	e = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	if (!ok) {
		snprintf(err, errlen, "ca-cert.pem does not chain to root-cert.pem: %s",
			 X509_verify_cert_error_string(e));
		return -EINVAL;
	}
	return 0;
}

/* Reads the four files of dir into ca. */
static int load_dir(struct xm_ca *ca, const char *dir, int64_t now, char *err, size_t errlen)
{
	char path[4200], *buf = NULL;
	size_t len;
	STACK_OF(X509) * certs;
	BIO *bio;
	int rc;

	snprintf(path, sizeof(path), "%.4000s/ca-cert.pem", dir);
	if ((rc = read_file(path, &buf, &len))) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	certs = read_pem_certs(buf, len);
	free(buf);
	if (!certs || !sk_X509_num(certs)) {
		sk_X509_free(certs);
		snprintf(err, errlen, "%s: no PEM certificate", path);
		return -EINVAL;
	}
	ca->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (X509_check_ca(ca->cert) == 0 || !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN)) {
		snprintf(err, errlen, "%s: not a CA certificate (basicConstraints CA:TRUE and keyCertSign)", path);
		return -EINVAL;
	}
	ca->not_after = asn1_time_unix(X509_get0_notAfter(ca->cert));
	if (!X509_digest(ca->cert, EVP_sha256(), ca->id, NULL)) {
		snprintf(err, errlen, "%s: cannot hash the certificate", path);
		return -EINVAL;
	}

	snprintf(path, sizeof(path), "%.4000s/ca-key.pem", dir);
	if ((rc = read_file(path, &buf, &len))) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	bio = BIO_new_mem_buf(buf, (int)len);
	ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	free_secret(buf, len);
	ERR_clear_error();
	if (!ca->key) {
		snprintf(err, errlen, "%s: no PEM private key (an encrypted key is not supported)", path);
		return -EINVAL;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s/ca-key.pem is not the key of ca-cert.pem", dir);
		return -EINVAL;
	}

	snprintf(path, sizeof(path), "%.4000s/root-cert.pem", dir);
	if ((rc = read_file(path, &buf, &len))) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	{
		char why[256];

		ca->bundle = bundle_from_pem(buf, len, why, sizeof(why));
		free(buf);
		if (!ca->bundle) {
			snprintf(err, errlen, "%s: %s", path, why);
			return -EINVAL;
		}
	}

	/* The chain a peer needs: ca-cert.pem when it is an intermediate, then cert-chain.pem's intermediates. */
	ca->chain = sk_X509_new_null();
	if (!ca->chain) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!self_signed(ca->cert)) {
		X509_up_ref(ca->cert);
		if (!sk_X509_push(ca->chain, ca->cert)) {
			X509_free(ca->cert);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	snprintf(path, sizeof(path), "%.4000s/cert-chain.pem", dir);
	rc = read_file(path, &buf, &len);
	if (rc && rc != -ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (!rc) {
		certs = read_pem_certs(buf, len);
		free(buf);
		if (!certs) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		while (sk_X509_num(certs)) {
			X509 *x = sk_X509_shift(certs);

			if (self_signed(x) || !X509_cmp(x, ca->cert) || !sk_X509_push(ca->chain, x))
				X509_free(x);
		}
		sk_X509_free(certs);
	}
	return check_signing_cert(ca, now, err, errlen);
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

/* A random positive serial of 128 bits, as Istio's CA draws them. */
static int set_serial(X509 *x)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	raw[0] &= 0x7f;
	raw[0] |= 0x01; /* never zero, always 16 bytes */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -ENOMEM;
}

static int set_validity(X509 *x, int64_t from, int64_t to)
{
	if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)from) || !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)to))
		return -EINVAL;
	return 0;
}

/* Writes data to path with mode, created exclusively. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	if (n != (ssize_t)len || fsync(fd)) {
		int err = n < 0 ? -errno : -EIO;

		close(fd);
		return err;
	}
	return close(fd) ? -errno : 0;
}

static int pem_of(int (*writer)(BIO *, const void *), const void *obj, char **out, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (!bio || !writer(bio, obj)) {
		BIO_free(bio);
		return -ENOMEM;
	}
	n = BIO_get_mem_data(bio, &p);
	*out = malloc((size_t)n + 1);
	if (!*out) {
		BIO_free(bio);
		return -ENOMEM;
	}
	memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
	*len = (size_t)n;
	OPENSSL_cleanse(p, (size_t)n);
	BIO_free(bio);
	return 0;
}

static int write_cert_bio(BIO *b, const void *x)
{
	return PEM_write_bio_X509(b, (X509 *)x);
}

static int write_key_bio(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

/* A self-signed ECDSA P-256 root in the plug-in layout, in the new directory dir. */
static int generate_root(const char *dir, int64_t now)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	char path[4200], *pem = NULL;
	size_t len = 0;
	int err = -ENOMEM;

	if (!key || !x)
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) ||
	    set_validity(x, now - BACKDATE_MAX_S, now + ROOT_TTL_S) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)ROOT_ORGANIZATION, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"xmesh root CA", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key))
		goto out;
	if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, x, NID_authority_key_identifier, "keyid:always"))
		goto out;
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	/* The key first and alone: 0600 from creation, never readable by anyone else for a moment. */
	snprintf(path, sizeof(path), "%.4000s/ca-key.pem", dir);
	if ((err = pem_of(write_key_bio, key, &pem, &len)) || (err = write_file(path, pem, len, 0600)))
		goto out;
	free_secret(pem, len);
	pem = NULL;
	if ((err = pem_of(write_cert_bio, x, &pem, &len)))
		goto out;
	snprintf(path, sizeof(path), "%.4000s/ca-cert.pem", dir);
	if ((err = write_file(path, pem, len, 0644)))
		goto out;
	snprintf(path, sizeof(path), "%.4000s/root-cert.pem", dir);
	if ((err = write_file(path, pem, len, 0644)))
		goto out;
	snprintf(path, sizeof(path), "%.4000s/cert-chain.pem", dir); /* empty: ca-cert.pem is the root (Istio's docs) */
	err = write_file(path, "", 0, 0644);
out:
	free_secret(pem, len);
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(x);
	return err;
}

static void remove_dir(const char *dir)
{
	static const char *const files[] = { "ca-key.pem", "ca-cert.pem", "root-cert.pem", "cert-chain.pem" };
	char path[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%.4000s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/*
 * <state_dir>/ca: made whole in a temporary directory, then renamed into place, so an agent that stops half
 * way or a second agent on a shared state dir never sees half a root; the loser of a race loads the winner's.
 */
static int ensure_generated(const char *state_dir, const char *dir, int64_t now, bool *made, char *err, size_t errlen)
{
	char tmp[4200];
	struct stat st;
	int rc;

	*made = false;
	if (!stat(dir, &st))
		return 0;
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if ((rc = xm_mkdir_p(state_dir, 0700))) {
		snprintf(err, errlen, "state directory %s: %s", state_dir, strerror(-rc));
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%.4000s/.ca.XXXXXX", state_dir);
	if (!mkdtemp(tmp)) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -errno;
	}
	rc = generate_root(tmp, now);
	if (rc) {
		remove_dir(tmp);
		snprintf(err, errlen, "generating a root CA in %s: %s", state_dir, strerror(-rc));
		return rc;
	}
	if (rename(tmp, dir)) {
		rc = -errno;
		remove_dir(tmp);
		if (rc == -EEXIST || rc == -ENOTEMPTY)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
		return rc;
	}
	*made = true;
	return 0;
}

struct xm_ca *ca_open(const struct xm_ca_opts *o, int64_t now, char *err, size_t errlen)
{
	struct xm_ca *ca = calloc(1, sizeof(*ca));
	char dir[4200];
	bool made = false;
	struct stat st;

	if (!ca) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((o->ca_dir && strlen(o->ca_dir) > 4000) || (o->state_dir && strlen(o->state_dir) > 4000)) {
		snprintf(err, errlen, "CA directory path longer than 4000 bytes");
		goto fail;
	}
	if (o->ca_dir) {
		snprintf(dir, sizeof(dir), "%s", o->ca_dir);
		snprintf(ca->source, sizeof(ca->source), "--ca-dir %.4000s", o->ca_dir);
	} else {
		const char *state = o->state_dir ? o->state_dir : XM_DEFAULT_STATE_DIR;

		snprintf(dir, sizeof(dir), "%.4000s/ca", state);
		if (ensure_generated(state, dir, now, &made, err, errlen))
			goto fail;
		snprintf(ca->source, sizeof(ca->source), "%s root in %.4000s", made ? "new generated" : "generated",
			 dir);
	}
	if (load_dir(ca, dir, now, err, errlen))
		goto fail;
	if (!o->ca_dir) {
		char key[4300];

		snprintf(key, sizeof(key), "%.4000s/ca-key.pem", dir);
		if (!stat(key, &st) && (st.st_mode & 077)) {
			snprintf(err, errlen, "%s: mode %03o lets others read the root key; want 0600", key,
				 (unsigned)(st.st_mode & 0777));
			goto fail;
		}
	}
	return ca;
fail:
	ca_free(ca);
	return NULL;
}

static int add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	int ok = 0;

	if (!names || !g || !s || !ASN1_STRING_set(s, uri, (int)strlen(uri)))
		goto out;
	GENERAL_NAME_set0_value(g, GEN_URI, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(names, g))
		goto out;
	g = NULL;
	/* Critical: the subject is empty, so the SAN is the certificate's only name (RFC 5280 §4.2.1.6). */
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 1, X509V3_ADD_DEFAULT) == 1;
out:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(names);
	return ok ? 0 : -EINVAL;
}

struct xm_cert *ca_mint(struct xm_ca *ca, const char *spiffe_uri, int64_t now, uint32_t ttl_s, int *err)
{
	struct xm_spiffe_id id;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	STACK_OF(X509) *chain = NULL;
	struct xm_cert *c;
	int64_t backdate = ttl_s / 10 < BACKDATE_MAX_S ? ttl_s / 10 : BACKDATE_MAX_S, not_after = now + ttl_s;

	*err = -EINVAL;
	if (!ttl_s || spiffe_parse(spiffe_uri, strlen(spiffe_uri), &id, NULL))
		return NULL;
	if (not_after > ca->not_after)
		not_after = ca->not_after; /* a leaf outliving its CA would fail verification early anyway */
	if (not_after <= now) {
		*err = -EKEYEXPIRED;
		return NULL;
	}
	*err = -ENOMEM;
	key = EVP_EC_gen("P-256");
	x = X509_new();
	chain = X509_chain_up_ref(ca->chain);
	if (!key || !x || !chain)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) || set_validity(x, now - backdate, not_after) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) || !X509_set_pubkey(x, key))
		goto fail;
	if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
	    add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(x, ca->cert, NID_subject_key_identifier, "hash") || add_uri_san(x, id.uri))
		goto fail;
	/* A plug-in CA certificate without a subject key identifier gets leaves without an authority one. */
	if (X509_get0_subject_key_id(ca->cert) && add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always"))
		goto fail;
	if (!X509_sign(x, ca->key, EVP_sha256())) {
		*err = -EIO;
		goto fail;
	}
	c = cert_new(key, x, chain, id.uri, now);
	if (!c)
		goto fail;
	memcpy(c->issuer, ca->id, sizeof(c->issuer));
	ERR_clear_error();
	*err = 0;
	return c;
fail:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	return NULL;
}
