// SPDX-License-Identifier: Apache-2.0
/* kubeconfig parsing: the current context's cluster and user, paths, inline data, what is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kubeconfig.h"

static int parse(const char *text, struct kube_endpoint *e, char *err)
{
	return kubeconfig_parse(text, strlen(text), "/etc/kube", e, err, 256);
}

static const char two_contexts[] = "apiVersion: v1\n"
				   "kind: Config\n"
				   "current-context: prod\n"
				   "clusters:\n"
				   "- name: dev\n"
				   "  cluster: {server: 'https://dev:6443'}\n"
				   "- name: prodc\n"
				   "  cluster:\n"
				   "    server: https://10.0.0.1:6443/\n"
				   "    certificate-authority: ca.pem\n"
				   "contexts:\n"
				   "- name: dev\n"
				   "  context: {cluster: dev, user: dev}\n"
				   "- name: prod\n"
				   "  context: {cluster: prodc, user: admin, namespace: team}\n"
				   "users:\n"
				   "- name: dev\n"
				   "  user: {token: devtoken}\n"
				   "- name: admin\n"
				   "  user:\n"
				   "    client-certificate: /abs/cert.pem\n"
				   "    client-key: key.pem\n";

Test(kube_config, current_context_with_client_cert)
{
	struct kube_endpoint e;
	char err[256];

	cr_assert_eq(parse(two_contexts, &e, err), 0, "%s", err);
	cr_expect_str_eq(e.server, "https://10.0.0.1:6443");
	cr_expect_str_eq(e.ca_file, "/etc/kube/ca.pem");
	cr_expect_str_eq(e.cert_file, "/abs/cert.pem");
	cr_expect_str_eq(e.key_file, "/etc/kube/key.pem");
	cr_expect_null(e.token);
	cr_expect_str_eq(e.context, "prod");
	cr_expect_str_eq(e.ns, "team");
	cr_expect(!e.insecure);
	kube_endpoint_free(&e);
}

Test(kube_config, json_with_inline_data_and_token)
{
	/* "aGVsbG8=" is "hello", "YWI=" is "ab". */
	static const char json[] =
	    "{\"current-context\":\"c\",\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://k:443\","
	    "\"certificate-authority-data\":\"aGVsbG8=\",\"insecure-skip-tls-verify\":true}}],"
	    "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\",\"user\":\"u\"}}],"
	    "\"users\":[{\"name\":\"u\",\"user\":{\"tokenFile\":\"tok\",\"client-certificate-data\":\"YWI=\","
	    "\"client-key-data\":\"YWI=\"}}]}";
	struct kube_endpoint e;
	char err[256];

	cr_assert_eq(parse(json, &e, err), 0, "%s", err);
	cr_expect_eq(e.ca_data.len, 5);
	cr_expect_eq(memcmp(e.ca_data.data, "hello", 5), 0);
	cr_expect_eq(e.cert_data.len, 2);
	cr_expect_str_eq(e.token_file, "/etc/kube/tok");
	cr_expect(e.insecure);
	kube_endpoint_free(&e);
}

static void refused(const char *text, const char *needle)
{
	struct kube_endpoint e;
	char err[256];

	cr_expect_eq(parse(text, &e, err), -EINVAL, "accepted: %s", text);
	cr_expect_not_null(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
}

Test(kube_config, refusals_say_why)
{
	refused("", "empty");
	refused("[1]", "mapping");
	refused("clusters: []", "current-context");
	refused("current-context: x\ncontexts: []\n", "not among the contexts");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: nope}}]\n", "\"nope\"");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		"clusters: [{name: k, cluster: {}}]\n",
		"no server");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		"clusters: [{name: k, cluster: {server: 'ftp://k'}}]\n",
		"not an http");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		"clusters: [{name: k, cluster: {server: 'https://k', certificate-authority-data: '!!!'}}]\n",
		"base64");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\n"
		"clusters: [{name: k, cluster: {server: 'https://k'}}]\nusers: [{name: u, user: {exec: {}}}]\n",
		"exec");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\n"
		"clusters: [{name: k, cluster: {server: 'https://k'}}]\n"
		"users: [{name: u, user: {client-certificate: c.pem}}]\n",
		"needs its key");
	refused("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: missing}}]\n"
		"clusters: [{name: k, cluster: {server: 'https://k'}}]\n",
		"\"missing\"");
	refused("{a: [", "1:");
}

Test(kube_config, token_file_reread)
{
	char dir[] = "/tmp/xmesh-kubecfg-XXXXXX", path[128], tok[128], err[256];
	struct kube_endpoint e = { 0 };
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	e.token_file = path;
	cr_expect_lt(kube_endpoint_token(&e, tok, sizeof(tok), err, sizeof(err)), 0);
	cr_expect_not_null(strstr(err, path));
	f = fopen(path, "w");
	fputs("first\n", f);
	fclose(f);
	cr_assert_eq(kube_endpoint_token(&e, tok, sizeof(tok), err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(tok, "first");
	f = fopen(path, "w");
	fputs("rotated", f);
	fclose(f);
	cr_assert_eq(kube_endpoint_token(&e, tok, sizeof(tok), err, sizeof(err)), 0);
	cr_expect_str_eq(tok, "rotated");
	unlink(path);
	rmdir(dir);
}

Test(kube_config, in_cluster)
{
	struct kube_endpoint e;
	char err[256];

	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_expect_eq(kube_in_cluster("/sa", &e, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	cr_assert_eq(kube_in_cluster("/sa", &e, err, sizeof(err)), 0);
	cr_expect_str_eq(e.server, "https://[fd00::1]:443");
	cr_expect_str_eq(e.token_file, "/sa/token");
	cr_expect_str_eq(e.ca_file, "/sa/ca.crt");
	kube_endpoint_free(&e);
}
