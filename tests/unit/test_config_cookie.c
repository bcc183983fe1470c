/* SPDX-License-Identifier: Apache-2.0 */
/* DestinationRule consistentHash.httpCookie: name, path and ttl as the L7 proxy issues the cookie, and their errors. */
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

TestSuite(config_cookie, .fini = teardown);

/* A DestinationRule whose consistentHash is the flow mapping `cookie` (line 6), beside the Service it names. */
static int load_cookie(const char *cookie)
{
	char text[1024], *path;
	const char *paths[1];
	int r;

	snprintf(text, sizeof(text),
		 "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\n"
		 "spec:\n  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: %s}}}\n"
		 "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: ns}\n"
		 "spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 9080}]}\n",
		 cookie);
	path = temp_yaml(text);
	paths[0] = path;
	r = config_load(paths, 1, &cfg, &diags);
	unlink(path);
	free(path);
	return r;
}

static const struct xm_load_balancer *loaded_lb(void)
{
	cr_assert_eq(cfg.n_rules, 1);
	return &cfg.rules[0].policy.lb;
}

Test(config_cookie, name_only_issues_no_cookie)
{
	const struct xm_load_balancer *lb;

	cr_assert_eq(load_cookie("{name: user}"), 0);
	cr_assert_eq(diags.n, 0);
	lb = loaded_lb();
	cr_expect_eq(lb->simple, XM_DR_LB_CONSISTENT_HASH);
	cr_expect_eq(lb->hash_key, XM_DR_HASH_HTTP_COOKIE);
	cr_expect_str_eq(lb->hash_param, "user");
	cr_expect_not(lb->cookie_ttl_set, "without a ttl Envoy never issues the cookie");
	cr_expect_str_eq(lb->cookie_path, "");
}

Test(config_cookie, path_and_ttl)
{
	const struct xm_load_balancer *lb;

	cr_assert_eq(load_cookie("{name: user, path: /api/v1, ttl: 1h}"), 0);
	cr_assert_eq(diags.n, 0);
	lb = loaded_lb();
	cr_expect_str_eq(lb->hash_param, "user");
	cr_expect_str_eq(lb->cookie_path, "/api/v1");
	cr_expect(lb->cookie_ttl_set);
	cr_expect_eq(lb->cookie_ttl_ms, 3600ULL * 1000);
}

Test(config_cookie, zero_ttl_is_a_session_cookie)
{
	const struct xm_load_balancer *lb;

	cr_assert_eq(load_cookie("{name: user, ttl: 0s}"), 0);
	lb = loaded_lb();
	cr_expect(lb->cookie_ttl_set);
	cr_expect_eq(lb->cookie_ttl_ms, 0);
}

Test(config_cookie, path_with_a_semicolon_is_refused)
{
	cr_expect_eq(load_cookie("{name: user, path: \"/a;Domain=evil\"}"), -EINVAL);
	cr_assert_eq(diags.n, 1);
	find_diag(&diags, ".yaml", 6, 82, "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.path",
		  "may not hold control characters or ';'");
	cr_expect_str_eq(loaded_lb()->cookie_path, "", "the bad path is not kept");
}

Test(config_cookie, path_with_a_line_break_is_refused)
{
	cr_expect_eq(load_cookie("{name: user, path: \"/a\\r\\nSet-Cookie: x=y\"}"), -EINVAL);
	cr_assert_eq(diags.n, 1);
	cr_expect(strstr(diags.items[0].msg, "may not hold control characters"), "%s", diags.items[0].msg);
}

Test(config_cookie, name_must_be_a_token)
{
	cr_expect_eq(load_cookie("{name: \"a b=c\", ttl: 10s}"), -EINVAL);
	cr_assert_eq(diags.n, 1);
	find_diag(&diags, ".yaml", 6, 70, "httpCookie.name \"a b=c\"", "is not a cookie name");
	cr_expect_str_eq(loaded_lb()->hash_param, "");
}

Test(config_cookie, path_too_long)
{
	char cookie[400];

	snprintf(cookie, sizeof(cookie), "{name: user, path: /%0*d}", XM_COOKIE_PATH_MAX, 7);
	cr_expect_eq(load_cookie(cookie), -EINVAL);
	cr_assert_eq(diags.n, 1);
	cr_expect(strstr(diags.items[0].msg, "is too long"), "%s", diags.items[0].msg);
}

Test(config_cookie, bad_ttl)
{
	cr_expect_eq(load_cookie("{name: user, ttl: soon}"), -EINVAL);
	cr_assert_eq(diags.n, 1);
	cr_expect(strstr(diags.items[0].msg, "httpCookie.ttl \"soon\" is not a valid duration"), "%s",
		  diags.items[0].msg);
	cr_expect_not(loaded_lb()->cookie_ttl_set);
}
