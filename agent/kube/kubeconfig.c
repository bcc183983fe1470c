// SPDX-License-Identifier: Apache-2.0
#include "kube/kubeconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "config/model.h"
#include "config/yaml_tree.h"
#include "kube/stream.h"

#define KUBECONFIG_MAX (4u << 20)

void kube_endpoint_free(struct kube_endpoint *e)
{
	free(e->server);
	free(e->ca_file);
	free(e->ca_data.data);
	free(e->token);
	free(e->token_file);
	free(e->cert_file);
	free(e->key_file);
	free(e->cert_data.data);
	free(e->key_data.data);
	free(e->context);
	free(e->ns);
	memset(e, 0, sizeof(*e));
}

struct parse {
	struct kube_endpoint *e;
	const char *base_dir;
	char *err;
	size_t err_size;
	int rc;
	int docs;
};

static int fail(struct parse *p, const char *fmt, const char *arg)
{
	if (!p->rc) {
		snprintf(p->err, p->err_size, fmt, arg ? arg : "");
		p->rc = -EINVAL;
	}
	return p->rc;
}

/* The entry of a named list (clusters, users, contexts) whose name is name, or NULL. */
static const struct ynode *named(const struct ynode *root, const char *list, const char *name, const char *inner)
{
	const struct ynode *seq = ymap_get(root, list, NULL);

	if (!seq || seq->kind != YNODE_SEQ)
		return NULL;
	for (size_t i = 0; i < seq->n; i++) {
		const char *n = ynode_str(seq->kids[i], "name");
		const struct ynode *v;

		if (!n || strcmp(n, name))
			continue;
		v = ymap_get(seq->kids[i], inner, NULL);
		return v && v->kind == YNODE_MAP ? v : NULL;
	}
	return NULL;
}

static char *path_of(struct parse *p, const char *path)
{
	char *out = NULL;

	if (path[0] == '/' || !p->base_dir || !p->base_dir[0])
		return strdup(path);
	if (asprintf(&out, "%s/%s", p->base_dir, path) < 0)
		return NULL;
	return out;
}

static int decode(struct parse *p, const char *field, const char *b64, struct kube_blob *out)
{
	size_t len = strlen(b64), n = 0;
	unsigned char *buf;
	int got;

	while (len && (b64[len - 1] == '\n' || b64[len - 1] == ' '))
		len--;
	if (!len || len % 4 || len > KUBECONFIG_MAX)
		return fail(p, "%s is not base64", field);
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (got < 0) {
		free(buf);
		return fail(p, "%s is not base64", field);
	}
	n = (size_t)got;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (b64[len - 1] == '=')
		n--;
	if (b64[len - 2] == '=')
		n--;
	out->data = buf;
	out->len = n;
	return 0;
}

/* A string field: copied (resolved as a path when is_path); absent is fine. */
static int str_field(struct parse *p, const struct ynode *map, const char *key, bool is_path, char **out)
{
	const struct ynode *v = ymap_get(map, key, NULL);

	if (!v || ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_SCALAR || strlen(v->str) != v->len || !v->len)
		return fail(p, "%s must be a non-empty string", key);
	*out = is_path ? path_of(p, v->str) : strdup(v->str);
	return *out ? 0 : -ENOMEM;
}

static void on_doc(void *arg, const struct ydoc *doc)
{
	struct parse *p = arg;
	struct kube_endpoint *e = p->e;
	const struct ynode *root = doc->root, *ctx, *cluster, *user, *v;
	const char *cur, *cl, *us;

	if (p->docs++) {
		fail(p, "a kubeconfig is one document%s", NULL);
		return;
	}
	if (!root || root->kind != YNODE_MAP) {
		fail(p, "a kubeconfig is a mapping%s", NULL);
		return;
	}
	cur = ynode_str(root, "current-context");
	if (!cur) {
		fail(p, "no current-context%s", NULL);
		return;
	}
	ctx = named(root, "contexts", cur, "context");
	if (!ctx) {
		fail(p, "current-context \"%s\" is not among the contexts", cur);
		return;
	}
	cl = ynode_str(ctx, "cluster");
	us = ynode_str(ctx, "user");
	if (!cl || !(cluster = named(root, "clusters", cl, "cluster"))) {
		fail(p, "the context's cluster \"%s\" is not among the clusters", cl ? cl : "");
		return;
	}
	e->context = strdup(cur);
	if (!e->context || str_field(p, ctx, "namespace", false, &e->ns) ||
	    str_field(p, cluster, "server", false, &e->server) ||
	    str_field(p, cluster, "certificate-authority", true, &e->ca_file)) {
		fail(p, "out of memory%s", NULL);
		return;
	}
	if (!e->server) {
		fail(p, "cluster \"%s\" has no server", cl);
		return;
	}
	if (strncmp(e->server, "https://", 8) && strncmp(e->server, "http://", 7)) {
		fail(p, "server \"%s\" is not an http(s) URL", e->server);
		return;
	}
	for (size_t n = strlen(e->server); n > 8 && e->server[n - 1] == '/'; n--)
		e->server[n - 1] = '\0';
	if ((v = ymap_get(cluster, "certificate-authority-data", NULL)) && !ynode_is_null(v) &&
	    (v->kind != YNODE_SCALAR || decode(p, "certificate-authority-data", v->str, &e->ca_data)))
		return (void)fail(p, "certificate-authority-data is not base64%s", NULL);
	if ((v = ymap_get(cluster, "insecure-skip-tls-verify", NULL)) && v->kind == YNODE_SCALAR && v->plain &&
	    !strcmp(v->str, "true"))
		e->insecure = true;
	if (!us)
		return; /* no user: anonymous */
	user = named(root, "users", us, "user");
	if (!user) {
		fail(p, "the context's user \"%s\" is not among the users", us);
		return;
	}
	if (ymap_get(user, "exec", NULL) || ymap_get(user, "auth-provider", NULL)) {
		fail(p,
		     "user \"%s\": exec and auth-provider credentials are not supported (use a token or a client "
		     "certificate)",
		     us);
		return;
	}
	if (str_field(p, user, "token", false, &e->token) || str_field(p, user, "tokenFile", true, &e->token_file) ||
	    str_field(p, user, "client-certificate", true, &e->cert_file) ||
	    str_field(p, user, "client-key", true, &e->key_file))
		return (void)fail(p, "out of memory%s", NULL);
	if ((v = ymap_get(user, "client-certificate-data", NULL)) && !ynode_is_null(v) &&
	    (v->kind != YNODE_SCALAR || decode(p, "client-certificate-data", v->str, &e->cert_data)))
		return (void)fail(p, "client-certificate-data is not base64%s", NULL);
	if ((v = ymap_get(user, "client-key-data", NULL)) && !ynode_is_null(v) &&
	    (v->kind != YNODE_SCALAR || decode(p, "client-key-data", v->str, &e->key_data)))
		return (void)fail(p, "client-key-data is not base64%s", NULL);
	if ((e->cert_file || e->cert_data.data) != (e->key_file || e->key_data.data))
		fail(p, "user \"%s\": a client certificate needs its key (and a key its certificate)", us);
}

int kubeconfig_parse(const char *text, size_t len, const char *base_dir, struct kube_endpoint *e, char *err,
		     size_t err_size)
{
	struct parse p = { .e = e, .base_dir = base_dir, .err = err, .err_size = err_size };
	struct xm_diags diags = { 0 };
	int n_errors = 0;

	memset(e, 0, sizeof(*e));
	if (err_size)
		err[0] = '\0';
	ytree_read_string(text, len, "<kubeconfig>", &diags, &n_errors, on_doc, &p);
	if (n_errors && !p.rc) {
		snprintf(err, err_size, "%d:%d: %s", diags.n ? diags.items[0].loc.line : 0,
			 diags.n ? diags.items[0].loc.col : 0, diags.n ? diags.items[0].msg : "YAML error");
		p.rc = -EINVAL;
	}
	if (!p.rc && !p.docs)
		fail(&p, "the kubeconfig is empty%s", NULL);
	diags_free(&diags);
	if (p.rc)
		kube_endpoint_free(e);
	return p.rc;
}

static int read_small(const char *path, char **out, size_t *len, size_t max)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f) || n > max) {
		int err = ferror(f) ? -EIO : -EFBIG;

		fclose(f);
		free(buf);
		return err;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int kubeconfig_load(const char *path, struct kube_endpoint *e, char *err, size_t err_size)
{
	char *text = NULL, *dir = strdup(path), *slash;
	size_t len;
	int rc;

	if (!dir)
		return -ENOMEM;
	rc = read_small(path, &text, &len, KUBECONFIG_MAX);
	if (rc) {
		snprintf(err, err_size, "%s: %s", path, strerror(-rc));
		free(dir);
		return rc;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	rc = kubeconfig_parse(text, len, dir, e, err, err_size);
	free(text);
	free(dir);
	return rc;
}

int kube_in_cluster(const char *sa_dir, struct kube_endpoint *e, char *err, size_t err_size)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");

	memset(e, 0, sizeof(*e));
	if (!sa_dir)
		sa_dir = KUBE_SA_DIR;
	if (!host || !host[0] || !port || !port[0]) {
		snprintf(err, err_size,
			 "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset");
		return -EINVAL;
	}
	/* An IPv6 service address is bracketed in the URL. */
	if (asprintf(&e->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0 ||
	    asprintf(&e->token_file, "%s/token", sa_dir) < 0 || asprintf(&e->ca_file, "%s/ca.crt", sa_dir) < 0) {
		e->server = e->token_file = e->ca_file = NULL; /* asprintf leaves them undefined on failure */
		kube_endpoint_free(e);
		return -ENOMEM;
	}
	return 0;
}

int kube_endpoint_token(const struct kube_endpoint *e, char *out, size_t size, char *err, size_t err_size)
{
	char *text = NULL;
	size_t len;
	int rc;

	out[0] = '\0';
	if (!e->token_file) {
		snprintf(out, size, "%s", e->token ? e->token : "");
		return 0;
	}
	rc = read_small(e->token_file, &text, &len, size - 1);
	if (rc) {
		snprintf(err, err_size, "token %s: %s", e->token_file, strerror(-rc));
		return rc;
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (!len || strlen(text) != len || strpbrk(text, "\r\n")) {
		snprintf(err, err_size, "token %s: empty or not one line", e->token_file);
		free(text);
		return -EINVAL;
	}
	memcpy(out, text, len + 1);
	free(text);
	return 0;
}
