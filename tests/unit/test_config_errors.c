/* SPDX-License-Identifier: Apache-2.0 */
/* Config reader errors: each at the exact file:line:col of the offending node, naming the object. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/model.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_diags diags;

static void teardown(void)
{
	diags_free(&diags);
	config_free(&cfg);
}

TestSuite(config_errors, .fini = teardown);

/* Load fixtures/config/errors/NAME, expect -EINVAL and exactly n diagnostics. */
static void load_errors(const char *name, size_t n)
{
	char rel[128];
	const char *paths[1];
	int r;

	snprintf(rel, sizeof(rel), "errors/%s", name);
	paths[0] = fixture(rel);
	r = config_load(paths, 1, &cfg, &diags);
	if (n_errors(&diags) != n)
		dump_diags(&diags);
	cr_assert_eq(r, -EINVAL, "config_load returned %d", r);
	cr_assert_eq(n_errors(&diags), n, "%zu errors, expected %zu", n_errors(&diags), n);
}

Test(config_errors, bad_ip)
{
	load_errors("bad_ip.yaml", 1);
	find_diag(&diags, "errors/bad_ip.yaml", 6, 14,
		  "service default/reviews: ", "spec.clusterIP \"10.96.0.300\" is not a valid IP address");
	cr_expect_eq(cfg.n_services, 1, "the object is kept, without the bad field");
	cr_expect_eq(cfg.services[0].n_cluster_ips, 0);
}

Test(config_errors, port_out_of_range)
{
	load_errors("port_range.yaml", 2);
	find_diag(&diags, "errors/port_range.yaml", 11, 17,
		  "service default/reviews: port \"http\": ", "targetPort 70000 out of range 1-65535");
	find_diag(&diags, "errors/port_range.yaml", 13, 11,
		  "service default/reviews: port \"admin\": ", "port 0 out of range 1-65535");
}

Test(config_errors, service_port_name_matches_no_slice_port)
{
	load_errors("port_name.yaml", 1);
	find_diag(&diags, "errors/port_name.yaml", 10, 5,
		  "service default/reviews: port \"metrics\": ", "(they have \"http\", \"grpc\")");
}

Test(config_errors, bad_duration)
{
	load_errors("duration.yaml", 3);
	find_diag(&diags, "errors/duration.yaml", 9, 17,
		  "destinationrule default/reviews: ", "outlierDetection.interval \"10x\" is not a valid duration");
	find_diag(&diags, "errors/duration.yaml", 10, 25,
		  "destinationrule default/reviews: ", "baseEjectionTime \"-30s\" is not a valid duration");
	find_diag(&diags, "errors/duration.yaml", 13, 25,
		  "destinationrule default/reviews: ", "connectTimeout \"10\" is not a valid duration");
}

Test(config_errors, destinationrule_host_matches_no_service)
{
	load_errors("dr_host.yaml", 2);
	find_diag(&diags, "errors/dr_host.yaml", 7, 9,
		  "destinationrule default/reviews: ", "host \"ratings\" matches no Service");
	find_diag(&diags, "errors/dr_host.yaml", 15, 9, "destinationrule default/shop-reviews: ",
		  "host \"reviews.shop.svc.cluster.local\" matches no Service (looked for shop/reviews)");
	cr_expect_str_eq(cfg.rules[0].host_ns, "");
}

Test(config_errors, yaml_syntax_error_keeps_earlier_documents)
{
	load_errors("syntax.yaml", 1);
	find_diag(&diags, "errors/syntax.yaml", 15, 5,
		  "YAML syntax error: ", "did not find expected ',' or '}' (while parsing a flow mapping at line 14)");
	cr_assert_eq(cfg.n_services, 1, "the document before the error is read");
	cr_expect_str_eq(cfg.services[0].name, "good");
}

Test(config_errors, wrong_type)
{
	load_errors("wrong_type.yaml", 3);
	find_diag(&diags, "errors/wrong_type.yaml", 8, 11,
		  "service default/reviews: port \"http\": ", "port: expected an integer, got string \"9080\"");
	find_diag(&diags, "errors/wrong_type.yaml", 11, 15,
		  "service default/reviews: port \"grpc\": ", "protocol: expected a string, got a sequence");
	find_diag(&diags, "errors/wrong_type.yaml", 12, 20,
		  "service default/reviews: ", "spec.sessionAffinity: expected a string, got a mapping");
}

Test(config_errors, bad_enum)
{
	load_errors("bad_enum.yaml", 3);
	find_diag(&diags, "errors/bad_enum.yaml", 9, 15, "destinationrule default/reviews: ",
		  "spec.trafficPolicy.loadBalancer.simple \"FASTEST\" is not one of UNSPECIFIED, ROUND_ROBIN");
	find_diag(&diags, "errors/bad_enum.yaml", 11, 13, "destinationrule default/reviews: ",
		  "spec.trafficPolicy.tls.mode \"STRICT\" is not one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL");
	find_diag(&diags, "errors/bad_enum.yaml", 20, 15,
		  "service default/echo: port 7: ", "protocol \"ICMP\" is not one of TCP, UDP, SCTP");
}

Test(config_errors, duplicate_object_reported_at_the_second)
{
	load_errors("duplicate.yaml", 1);
	find_diag(&diags, "errors/duplicate.yaml", 13, 9, "service default/reviews: defined twice (first at ",
		  "errors/duplicate.yaml:4:9)");
	cr_assert_eq(cfg.n_services, 1);
	cr_expect_eq(cfg.services[0].ports[0].port, 9080, "the first one is kept");
}

Test(config_errors, missing_required_fields)
{
	load_errors("required.yaml", 3);
	find_diag(&diags, "errors/required.yaml", 4, 3, "service: ", "metadata.name is required");
	find_diag(&diags, "errors/required.yaml", 15, 5, "service default/noport: port \"http\": ", "port is required");
	find_diag(&diags, "errors/required.yaml", 23, 3, "destinationrule default/nohost: ", "spec.host is required");
	cr_expect_eq(cfg.n_services, 1, "a Service without a name cannot be kept");
}

Test(config_errors, address_family_mismatch)
{
	load_errors("family.yaml", 1);
	find_diag(&diags, "errors/family.yaml", 9, 5, "endpointslice default/reviews-v4: endpoints[0]: ",
		  "addresses[1] \"fd00:200::7\" is an IPv6 address, but addressType is IPv4");
	cr_assert_eq(cfg.n_slices, 1);
	cr_expect_eq(cfg.slices[0].endpoints[0].n_addrs, 1);
}

Test(config_errors, all_errors_of_a_file_in_order)
{
	static const struct {
		int line, col;
		const char *frag;
	} want[] = {
		{ 6, 14, "service default/many: spec.clusterIP \"10.96.0.999\" is not a valid IP address" },
		{ 7, 28, "service default/many: spec.externalIPs[1] \"not-an-ip\" is not a valid IP address" },
		{ 10, 11, "service default/many: port \"http\": port 65536 out of range 1-65535" },
		{ 11, 17, "port \"http\": targetPort \"Not_A_Name\" is neither a port number nor a port name" },
		{ 12, 5, "service default/many: port \"http\": duplicate port name (also spec.ports[0])" },
		{ 14, 15, "service default/many: port \"http\": protocol \"tcp\" is not one of TCP, UDP, SCTP" },
		{ 15, 20, "service default/many: spec.sessionAffinity \"Sticky\" is not one of None, ClientIP" },
		{ 25, 27,
		  "destinationrule default/many: spec.trafficPolicy.outlierDetection.maxEjectionPercent 101 out "
		  "of range 0-100" },
		{ 26, 25, "outlierDetection.minHealthPercent -1 out of range 0-100" },
		{ 27, 17, "outlierDetection.interval \"0s\" is shorter than 1ms" },
		{ 28, 29, "outlierDetection.consecutive5xxErrors: expected an integer, got \"five\"" },
		{ 29, 39, "splitExternalLocalOriginErrors: expected true or false, got string \"true\"" },
		{ 32, 5, "destinationrule default/many: subset \"v1\": duplicate subset name \"v1\"" },
	};

	load_errors("many.yaml", sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < diags.n; i++) {
		cr_expect_eq(diags.items[i].loc.line, want[i].line, "diag %zu: line %d", i, diags.items[i].loc.line);
		cr_expect_eq(diags.items[i].loc.col, want[i].col, "diag %zu: col %d", i, diags.items[i].loc.col);
		cr_expect(strstr(diags.items[i].msg, want[i].frag) != NULL, "diag %zu: %s", i, diags.items[i].msg);
	}
}

Test(config_errors, unreadable_paths)
{
	const char *paths[] = { fixture("errors/no-such-file.yaml"), "/nonexistent-xmesh-dir/",
				fixture("services.yaml") };
	int r = config_load(paths, 3, &cfg, &diags);

	cr_expect_eq(r, -ENOENT, "an I/O error is returned as its errno");
	cr_assert_eq(n_errors(&diags), 2, "and services.yaml's grpc port warning after them");
	cr_expect_str_eq(diags.items[0].loc.file, paths[0]);
	cr_expect_eq(diags.items[0].loc.line, 0);
	cr_expect_str_eq(diags.items[0].msg, "No such file or directory");
	cr_expect_str_eq(diags.items[1].loc.file, "/nonexistent-xmesh-dir/");
	cr_expect_eq(cfg.n_services, 5, "the readable path is still read");
}

Test(config_errors, diags_print_format)
{
	const char *paths[] = { fixture("errors/bad_ip.yaml"), "/nonexistent-xmesh-file.yaml" };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	char want[512];

	config_load(paths, 2, &cfg, &diags);
	diags_print(&diags, out);
	fclose(out);
	snprintf(want, sizeof(want),
		 "%s:6:14: service default/reviews: spec.clusterIP \"10.96.0.300\" is not a valid IP address\n"
		 "/nonexistent-xmesh-file.yaml: No such file or directory\n",
		 paths[0]);
	cr_expect_str_eq(buf, want);
	free(buf);
}

Test(config_errors, untrusted_values_are_escaped_in_messages)
{
	char *path = temp_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
			       "spec: {clusterIP: \"\\e[31mred\\n\", ports: [{port: 1}]}\n");
	const char *paths[] = { path };

	config_load(paths, 1, &cfg, &diags);
	unlink(path);
	free(path);
	cr_assert_eq(diags.n, 1);
	cr_expect(strstr(diags.items[0].msg, "\"\\x1b[31mred\\x0a\"") != NULL, "%s", diags.items[0].msg);
	cr_expect(strchr(diags.items[0].msg, '\n') == NULL);
}

Test(config_errors, object_shapes)
{
	char *path = temp_yaml("- not\n- an object\n"
			       "---\n"
			       "apiVersion: v1\nmetadata: {name: nokind}\n"
			       "---\n"
			       "kind: Service\nmetadata: {name: noapi}\n"
			       "---\n"
			       "apiVersion: networking.istio.io/v2\nkind: DestinationRule\nmetadata: {name: future}\n"
			       "---\n"
			       "apiVersion: v1\nkind: List\nitems:\n- 42\n");
	const char *paths[] = { path };

	config_load(paths, 1, &cfg, &diags);
	find_diag(&diags, path, 1, 1, "document: expected a Kubernetes object", "got a sequence");
	find_diag(&diags, path, 4, 1, "document: kind is required", NULL);
	find_diag(&diags, path, 7, 1, "document: apiVersion is required", NULL);
	find_diag(&diags, path, 10, 13, "apiVersion \"networking.istio.io/v2\" is not supported", NULL);
	find_diag(&diags, path, 17, 3, "items[0]: expected a Kubernetes object", "got \"42\"");
	cr_expect_eq(diags.n, 5);
	unlink(path);
	free(path);
}

/*
 * A config file with Services whose external IPs x ports add up to `total_ports` external VIP ports: the
 * first Service carries 1,000 IPs x 2 ports, a second one the rest (even), in a temporary file.
 */
static const char *write_external_vips(char *path, size_t total_ports)
{
	size_t first = total_ports < 2000 ? total_ports / 2 : 1000, second = total_ports / 2 - first;
	size_t counts[2] = { first, second };
	int fd;
	FILE *f;

	snprintf(path, 64, "/tmp/xmesh-ext-vips-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	for (int s = 0; s < 2; s++) {
		if (!counts[s])
			continue;
		fprintf(f,
			"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web%d\n  namespace: default\nspec:\n"
			"  clusterIP: 10.96.0.%d\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
			"  - name: https\n    port: 443\n    targetPort: 8443\n  externalIPs:\n",
			s, 50 + s);
		for (size_t i = 0; i < counts[s]; i++)
			fprintf(f, "  - 10.%d.%zu.%zu\n", 98 + s, i / 250, 1 + i % 250);
	}
	fclose(f);
	return path;
}

Test(config_errors, external_vip_ports_over_the_xdp_limit)
{
	char path[64];
	const char *paths[1] = { write_external_vips(path, 4200) };
	int r = config_load(paths, 1, &cfg, &diags);

	unlink(path);
	cr_assert_eq(r, -EINVAL, "config_load returned %d", r);
	cr_assert_eq(diags.n, 1, "%zu diagnostics", diags.n);
	cr_assert(strstr(diags.items[0].msg, "service default/web1: its external IPs bring the external VIP ports") &&
		      strstr(diags.items[0].msg, "to 4200, more than the 4095"),
		  "%s", diags.items[0].msg);
}

Test(config_errors, external_vip_ports_at_the_xdp_limit)
{
	char path[64];
	const char *paths[1] = { write_external_vips(path, 4094) };
	int r = config_load(paths, 1, &cfg, &diags);

	unlink(path);
	if (diags.n)
		dump_diags(&diags);
	cr_assert_eq(r, 0, "config_load returned %d", r);
}

/* The datapath keys service ports by VIP:port/protocol: two claims of one cannot both be served. */
Test(config_errors, two_service_ports_claim_one_vip_port)
{
	load_errors("vip_conflict.yaml", 4);
	find_diag(&diags, "errors/vip_conflict.yaml", 8, 5, "service default/reviews: 10.96.0.10:80/TCP ",
		  "also claimed by service default/reviews-copy (");
	find_diag(&diags, "errors/vip_conflict.yaml", 21, 5, "service default/reviews-copy: 10.96.0.10:80/TCP ",
		  "also claimed by service default/reviews (");
	find_diag(&diags, "errors/vip_conflict.yaml", 35, 5, "service shop/front: 192.0.2.10:443/TCP ",
		  "also claimed by service web/edge (");
	find_diag(&diags, "errors/vip_conflict.yaml", 56, 5, "service web/edge: 192.0.2.10:443/TCP ",
		  "also claimed by service shop/front (");
	cr_expect(strstr(diags.items[0].msg, "vip_conflict.yaml:21:5)"), "names the other's place: %s",
		  diags.items[0].msg);
}

/* Found by the cache tests: a third definition was compared with the dropped second one and kept. */
Test(config_errors, a_name_defined_three_times_keeps_only_the_first)
{
	char *path = temp_yaml("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
			       "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
			       "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
			       "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n");
	const char *paths[] = { path };
	int r = config_load(paths, 1, &cfg, &diags);

	unlink(path);
	cr_expect_eq(r, -EINVAL);
	cr_expect_eq(cfg.n_nodes, 1, "%zu nodes named n1 kept", cfg.n_nodes);
	cr_assert_eq(diags.n, 3);
	for (size_t i = 0; i < diags.n; i++)
		cr_expect(strstr(diags.items[i].msg, "defined twice (first at ") &&
			      strstr(diags.items[i].msg, ":3:18)"),
			  "diag %zu: %s", i, diags.items[i].msg);
	free(path);
}

/* A service account names a SPIFFE identity (spiffe://TD/ns/NS/sa/SA): only a Kubernetes name can be one. */
Test(config_errors, pod_service_account_not_a_name)
{
	load_errors("pod_service_account.yaml", 1);
	find_diag(&diags, "errors/pod_service_account.yaml", 6, 23, "pod shop/reviews-1: ",
		  "service account \"reviews/../admin\" is not a valid name (RFC 1123 subdomain)");
}
