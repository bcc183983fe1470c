// SPDX-License-Identifier: Apache-2.0
/*
 * config_load_cached: a reload parses only the files whose identity changed, and gives what config_load
 * gives (objects, diagnostics, result) every time.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compile/compile.h"
#include "config/cache.h"
#include "config/model.h"
#include "test_config.h"

static char dir[64];
static struct xm_config_cache *cache;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/xmesh-cache-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cache = config_cache_new();
	cr_assert_not_null(cache);
}

static void teardown(void)
{
	char cmd[128];

	config_cache_free(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(config_cache, .init = setup, .fini = teardown);

/* Writes DIR/name through a temporary file and a rename, as kubelet and editors do; modified `age` s ago. */
static void put_aged(const char *name, const char *text, int age)
{
	char path[256], tmp[256];
	struct timespec times[2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(clock_gettime(CLOCK_REALTIME, &times[0]), 0);
	times[0].tv_sec -= age;
	times[1] = times[0];
	cr_assert_eq(utimensat(AT_FDCWD, tmp, times, 0), 0);
	cr_assert_eq(rename(tmp, path), 0);
}

/* Written a while ago: the cache may keep what it parsed. */
static void put(const char *name, const char *text)
{
	put_aged(name, text, 10);
}

static void service_yaml(char *buf, size_t size, const char *name, const char *ip)
{
	snprintf(buf, size,
		 "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\n"
		 "spec: {clusterIP: %s, ports: [{port: 80, targetPort: 8080}]}\n",
		 name, ip);
}

/* Loads dir through the cache; returns config_load_cached's result. */
static int load(struct xm_config *cfg, struct xm_diags *diags)
{
	const char *paths[] = { dir };

	memset(diags, 0, sizeof(*diags));
	return config_load_cached(cache, paths, 1, cfg, diags);
}

Test(config_cache, unchanged_files_are_not_parsed_again)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char a[512], b[512];

	service_yaml(a, sizeof(a), "a", "10.96.0.1");
	service_yaml(b, sizeof(b), "b", "10.96.0.2");
	put("a.yaml", a);
	put("b.yaml", b);
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(load(&cfg, &diags), 0, "round %d", round);
		cr_expect_eq(diags.n, 0);
		cr_assert_eq(cfg.n_services, 2, "round %d", round);
		cr_expect_str_eq(cfg.services[0].name, "a");
		cr_expect_str_eq(cfg.services[1].name, "b");
		cr_expect_eq(cfg.n_files, 2);
		config_free(&cfg);
		diags_free(&diags);
	}
	cr_expect_eq(cache->parsed, 2, "each file parsed once");
	cr_expect_eq(cache->reused, 4);
}

Test(config_cache, a_changed_file_alone_is_parsed_again)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char a[512], b[512];

	service_yaml(a, sizeof(a), "a", "10.96.0.1");
	service_yaml(b, sizeof(b), "b", "10.96.0.2");
	put("a.yaml", a);
	put("b.yaml", b);
	cr_assert_eq(load(&cfg, &diags), 0);
	config_free(&cfg);
	diags_free(&diags);

	service_yaml(b, sizeof(b), "b", "10.96.0.3");
	put("b.yaml", b);
	cr_assert_eq(load(&cfg, &diags), 0);
	cr_expect_eq(cache->parsed, 3);
	cr_expect_eq(cache->reused, 1);
	assert_ip(&config_find_service(&cfg, "default", "b")->cluster_ips[0], "10.96.0.3");
	config_free(&cfg);
	diags_free(&diags);
}

Test(config_cache, a_rewrite_in_place_of_the_same_size_is_seen)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char path[256], b[512];
	FILE *f;

	service_yaml(b, sizeof(b), "b", "10.96.0.2");
	put("b.yaml", b);
	cr_assert_eq(load(&cfg, &diags), 0);
	config_free(&cfg);
	diags_free(&diags);
	/* Same inode, same size: only the times tell (the change time moves with every write). */
	service_yaml(b, sizeof(b), "b", "10.96.0.9");
	snprintf(path, sizeof(path), "%s/b.yaml", dir);
	f = fopen(path, "r+");
	cr_assert_not_null(f);
	fputs(b, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(load(&cfg, &diags), 0);
	assert_ip(&cfg.services[0].cluster_ips[0], "10.96.0.9");
	config_free(&cfg);
	diags_free(&diags);
}

Test(config_cache, a_removed_file_is_forgotten)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char a[512], path[256];

	service_yaml(a, sizeof(a), "a", "10.96.0.1");
	put("a.yaml", a);
	put("b.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n");
	cr_assert_eq(load(&cfg, &diags), 0);
	cr_expect_eq(cfg.n_nodes, 1);
	config_free(&cfg);
	diags_free(&diags);
	snprintf(path, sizeof(path), "%s/b.yaml", dir);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(load(&cfg, &diags), 0);
	cr_expect_eq(cfg.n_nodes, 0);
	cr_expect_eq(cfg.n_services, 1);
	cr_expect_eq(cache->n_files, 1, "the removed file's objects are freed");
	config_free(&cfg);
	diags_free(&diags);
}

Test(config_cache, errors_of_an_unchanged_file_are_reported_at_every_load)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char a[512];

	/* One parse error in bad.yaml, a duplicate across two files (dropped from the config, kept cached). */
	service_yaml(a, sizeof(a), "a", "10.96.0.1");
	put("a.yaml", a);
	put("a2.yaml", a);
	put("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n"
			"spec: {clusterIP: 10.96.0.300, ports: [{port: 80}]}\n");
	for (int round = 0; round < 2; round++) {
		cr_expect_eq(load(&cfg, &diags), -EINVAL);
		if (diags.n != 2)
			dump_diags(&diags);
		cr_assert_eq(diags.n, 2, "round %d", round);
		find_diag(&diags, "/a2.yaml", 3, 18, "service default/a: defined twice", NULL);
		find_diag(&diags, "/bad.yaml", 4, 19, "10.96.0.300", NULL);
		cr_expect_eq(cfg.n_services, 2);
		config_free(&cfg);
		diags_free(&diags);
	}
	cr_expect_eq(cache->parsed, 3);
}

Test(config_cache, a_missing_path_is_an_error_at_every_load)
{
	const char *paths[] = { "/nonexistent-xmesh-cache.yaml" };
	struct xm_config cfg;
	struct xm_diags diags = { 0 };

	for (int round = 0; round < 2; round++) {
		cr_expect_eq(config_load_cached(cache, paths, 1, &cfg, &diags), -ENOENT);
		cr_assert_eq(diags.n, 1);
		cr_expect_str_eq(diags.items[0].loc.file, paths[0]);
		config_free(&cfg);
		diags_free(&diags);
	}
}

/* Every fixture directory gives the same diagnostics and the same compiled service ports either way. */
static void same_as_uncached(const char *const *paths, size_t n)
{
	struct xm_compile_opts opts = { .node_name = "node-a", .maglev_size = 16381 };
	struct xm_config plain, cached;
	struct xm_diags d1 = { 0 }, d2 = { 0 };
	int r1 = config_load(paths, n, &plain, &d1);

	for (int round = 0; round < 2; round++) {
		int r2 = config_load_cached(cache, paths, n, &cached, &d2);

		cr_expect_eq(r1, r2);
		if (d1.n != d2.n) {
			dump_diags(&d1);
			dump_diags(&d2);
		}
		cr_assert_eq(d1.n, d2.n, "round %d: %zu diagnostics, %zu cached", round, d1.n, d2.n);
		for (size_t i = 0; i < d1.n; i++) {
			cr_expect_str_eq(d1.items[i].msg, d2.items[i].msg);
			cr_expect_str_eq(d1.items[i].loc.file, d2.items[i].loc.file);
			cr_expect_eq(d1.items[i].loc.line, d2.items[i].loc.line);
		}
		cr_expect_eq(plain.n_services, cached.n_services);
		cr_expect_eq(plain.n_slices, cached.n_slices);
		cr_expect_eq(plain.n_rules, cached.n_rules);
		if (!r1) {
			struct xm_lb_state s1, s2;

			cr_assert_eq(compile_lb(&plain, &opts, &s1), 0);
			cr_assert_eq(compile_lb(&cached, &opts, &s2), 0);
			cr_assert_eq(s1.n_services, s2.n_services);
			for (size_t i = 0; i < s1.n_services; i++) {
				cr_expect(
				    !memcmp(&s1.services[i].key, &s2.services[i].key, sizeof(s1.services[i].key)));
				cr_expect_eq(s1.services[i].algo, s2.services[i].algo);
				cr_expect_eq(s1.services[i].n_backends, s2.services[i].n_backends);
				cr_expect_eq(s1.services[i].outlier_on, s2.services[i].outlier_on);
			}
			lb_state_free(&s1);
			lb_state_free(&s2);
		}
		config_free(&cached);
		diags_free(&d2);
	}
	config_free(&plain);
	diags_free(&d1);
}

Test(config_cache, same_result_as_config_load_for_a_valid_config)
{
	const char *paths[] = { fixture("services.yaml"), fixture("endpointslices.yaml"),
				fixture("destinationrules.yaml"), fixture("nodes.yaml"), fixture("pods.yaml") };

	same_as_uncached(paths, 5);
}

Test(config_cache, same_result_as_config_load_for_configs_with_errors)
{
	const char *paths[] = { fixture("errors"), fixture("dir"), fixture("kubectl_bookinfo.yaml") };

	same_as_uncached(paths, 3);
}

/* Another write of the same size in the same timestamp tick would look unchanged: not trusted yet. */
Test(config_cache, a_file_modified_within_the_last_second_is_read_again)
{
	struct xm_config cfg;
	struct xm_diags diags;
	char a[512];

	service_yaml(a, sizeof(a), "a", "10.96.0.1");
	put_aged("a.yaml", a, 0);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(load(&cfg, &diags), 0);
		config_free(&cfg);
		diags_free(&diags);
	}
	cr_expect_eq(cache->parsed, 2);
	cr_expect_eq(cache->reused, 0);
}
