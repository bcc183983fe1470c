/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Config reader on hostile input: alias bombs, deep nesting, huge and binary scalars, truncated files.
 * Each test runs in its own process (criterion), so a crash is a failure; valgrind runs catch leaks.
 */
#include <criterion/criterion.h>

#include "config/model.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_diags diags;

static void teardown(void)
{
	diags_free(&diags);
	config_free(&cfg);
}

TestSuite(config_hostile, .fini = teardown, .timeout = 30);

static int load_text(const char *text)
{
	char *path = temp_yaml(text);
	const char *paths[] = { path };
	int r = config_load(paths, 1, &cfg, &diags);

	unlink(path);
	free(path);
	return r;
}

static bool any_diag(const char *frag)
{
	for (size_t i = 0; i < diags.n; i++) {
		if (strstr(diags.items[i].msg, frag))
			return true;
	}
	dump_diags(&diags);
	return false;
}

Test(config_hostile, billion_laughs)
{
	char text[4096] = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
	size_t used = strlen(text);

	for (int i = 1; i < 10; i++) {
		used += (size_t)snprintf(text + used, sizeof(text) - used, "a%d: &a%d [", i, i);
		for (int j = 0; j < 9; j++)
			used += (size_t)snprintf(text + used, sizeof(text) - used, "%s*a%d", j ? ", " : "", i - 1);
		used += (size_t)snprintf(text + used, sizeof(text) - used, "]\n");
	}
	cr_expect_eq(load_text(text), -EINVAL);
	cr_expect(any_diag("YAML aliases expand to more than 1048576 nodes"));
}

Test(config_hostile, deep_flow_nesting)
{
	size_t depth = 200000;
	char *text = malloc(depth * 2 + 64);

	strcpy(text, "kind: Service\nx: ");
	memset(text + strlen(text), '[', depth);
	text[17 + depth] = '\0';
	cr_expect_eq(load_text(text), -EINVAL);
	cr_expect(any_diag("YAML nesting deeper than 128 levels"));
	free(text);
}

Test(config_hostile, deep_block_nesting)
{
	size_t depth = 400, used = 0;
	char *text = malloc(depth * (depth * 2 + 8));

	for (size_t i = 0; i < depth; i++)
		used += (size_t)sprintf(text + used, "%*sk:\n", (int)(2 * i), "");
	cr_expect_eq(load_text(text), -EINVAL);
	cr_expect_eq(diags.n, 1);
	cr_expect_eq(diags.items[0].loc.line, 129);
	free(text);
}

Test(config_hostile, huge_scalar_truncated_with_error)
{
	size_t n = 4 << 20;
	char *text = malloc(n + 128);
	int len = sprintf(text, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  nodeName: ");

	memset(text + len, 'a', n);
	strcpy(text + len + n, "\n");
	cr_expect_eq(load_text(text), -EINVAL);
	cr_expect(any_diag("pod default/x: spec.nodeName is too long (4194304 characters, at most 253)"));
	cr_assert_eq(cfg.n_pods, 1);
	cr_expect_eq(strlen(cfg.pods[0].node_name), 253, "truncated, NUL-terminated");
	free(text);
}

Test(config_hostile, nul_and_invalid_utf8)
{
	cr_expect_eq(load_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: \"a\\0b\"\n"), -EINVAL);
	cr_expect(any_diag("node: metadata.name contains a NUL character"));
	diags_free(&diags);
	config_free(&cfg);
	cr_expect_eq(load_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: \xff\xfe\n"), -EINVAL);
	cr_expect(any_diag("invalid input: invalid leading UTF-8 octet"));
}

Test(config_hostile, undefined_and_recursive_aliases)
{
	cr_expect_eq(load_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: *nope}\n"), -EINVAL);
	cr_expect(any_diag("YAML alias *nope refers to no anchor defined before it"));
	cr_expect_eq(diags.items[0].loc.line, 4);
	cr_expect_eq(diags.items[0].loc.col, 15);
	diags_free(&diags);
	config_free(&cfg);
	cr_expect_eq(load_text("a: &x [1, *x]\n"), -EINVAL);
	cr_expect(any_diag("YAML alias *x refers to no anchor"));
}

Test(config_hostile, wrong_shapes_everywhere)
{
	/* Every used field given the wrong shape: errors, never a crash or a leak. */
	static const char *const docs[] = {
		"apiVersion: v1\nkind: Service\nmetadata: [x]\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: [x]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: {a: b}}\nspec: [1]\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIPs: [[1]], ports: [1, [2], {port: "
		"{}}], "
		"externalIPs: {a: b}}\nstatus: {loadBalancer: {ingress: [1, {ip: [2]}]}}\n",
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: x, labels: [1]}\naddressType: "
		"[IPv4]\n",
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: x}\naddressType: "
		"IPv4\nendpoints: [1, "
		"{addresses: 1}, {addresses: [[1]], conditions: [1], targetRef: 1}, {addresses: [], conditions: "
		"{ready: "
		"maybe}}]\nports: [1, {port: x}]\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {a: [1], [k]: v, \"\": 1}}\nspec: {nodeName: "
		"{}}\n"
		"status: {podIPs: [1, {ip: 1.2.3}], podIP: {}}\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: x}\nstatus: {addresses: [1, {type: InternalIP}, {type: "
		"InternalIP, address: [1]}]}\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: [1], "
		"trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {httpCookie: {ttl: x}, useSourceIp: "
		"yes, maglev: {tableSize: 65536}}}, outlierDetection: [1], connectionPool: {tcp: 1, http: {maxRetries: "
		"-1}}, tls: []}, subsets: [1, {name: V1}, {labels: 1}]}\n",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		cr_expect_eq(load_text(docs[i]), -EINVAL, "document %zu", i);
		cr_expect_gt(diags.n, 0, "document %zu", i);
		for (size_t j = 0; j < diags.n; j++)
			cr_expect_gt(diags.items[j].loc.line, 0, "document %zu: %s", i, diags.items[j].msg);
		diags_free(&diags);
		config_free(&cfg);
	}
}

Test(config_hostile, every_truncation_of_a_real_dump)
{
	const char *src = fixture("kubectl_bookinfo.yaml");
	FILE *f = fopen(src, "r");
	char *text, *cut;
	long size;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	text = malloc((size_t)size + 1);
	cut = malloc((size_t)size + 1);
	cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	for (long n = 0; n < size; n += 97) {
		memcpy(cut, text, (size_t)n);
		cut[n] = '\0';
		load_text(cut);
		diags_free(&diags);
		config_free(&cfg);
	}
	free(text);
	free(cut);
}
