/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the API server is and how to authenticate to it: from a kubeconfig file (its current context: the
 * cluster's server and certificate authority, the user's bearer token or client certificate), or from the
 * in-cluster service account (KUBERNETES_SERVICE_HOST/_PORT, the token and ca.crt the kubelet mounts).
 * Files named by the config are kept as paths (read at each connection: a rotated token is picked up);
 * "-data" fields are kept decoded, in memory.
 */
#ifndef XMESH_KUBE_KUBECONFIG_H
#define XMESH_KUBE_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_blob {
	unsigned char *data;
	size_t len;
};

struct kube_endpoint {
	char *server;  /* https://host:port (no trailing slash) */
	char *ca_file; /* certificate-authority; NULL: ca_data or the system's store */
	struct kube_blob ca_data;
	bool insecure;	  /* insecure-skip-tls-verify: refused unless the agent was given --insecure */
	char *token;	  /* a bearer token given inline */
	char *token_file; /* a bearer token read at each connection (service-account tokens rotate) */
	char *cert_file, *key_file;
	struct kube_blob cert_data, key_data;
	char *context, *ns; /* the context used, and its namespace (informational) */
};

void kube_endpoint_free(struct kube_endpoint *e);

/*
 * Parses a kubeconfig's text (YAML or JSON) into *e. Relative file paths resolve against base_dir (the
 * kubeconfig's directory). 0, or -EINVAL with the reason in err.
 */
int kubeconfig_parse(const char *text, size_t len, const char *base_dir, struct kube_endpoint *e, char *err,
		     size_t err_size);

/* Reads and parses the file at path. */
int kubeconfig_load(const char *path, struct kube_endpoint *e, char *err, size_t err_size);

/*
 * The in-cluster configuration: env KUBERNETES_SERVICE_HOST and _PORT, sa_dir/token and sa_dir/ca.crt
 * (sa_dir NULL: KUBE_SA_DIR). 0, or -EINVAL with the reason in err.
 */
int kube_in_cluster(const char *sa_dir, struct kube_endpoint *e, char *err, size_t err_size);

/*
 * The bearer token to send now: token_file re-read (trailing whitespace removed), else token, else "" (client
 * certificates). 0, or a negative errno with the reason in err.
 */
int kube_endpoint_token(const struct kube_endpoint *e, char *out, size_t size, char *err, size_t err_size);

#endif
