// SPDX-License-Identifier: Apache-2.0
/*
 * Objects from the Kubernetes API through the parse cache: each parsed alone (config_parse_object, as a
 * list item without kind/apiVersion or as a watch event's object), kept by key, merged after the files;
 * puts and deletes in one batch; an invalid object reports its errors and is not kept.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cache.h"
#include "config/model.h"
#include "config/yaml_tree.h"

struct one {
	const char *kind, *api, *name;
	struct xm_config *cfg;
	struct xm_diags diags;
	int n_errors;
};

static void on_doc(void *arg, const struct ydoc *doc)
{
	struct one *o = arg;

	cr_assert_eq(config_parse_object(doc->root, o->kind, o->api, o->name, o->cfg, &o->diags, &o->n_errors), 0);
}

/* The object in json parsed alone, as the file `name`; NULL (and *n_errors set) when it has errors. */
static struct xm_config *parse_as(const char *name, const char *json, const char *kind, const char *api, int *n_errors)
{
	struct one o = { .kind = kind, .api = api, .name = name, .cfg = calloc(1, sizeof(struct xm_config)) };
	int yaml_errors = 0;

	cr_assert_not_null(o.cfg);
	ytree_read_string(json, strlen(json), "<test>", &o.diags, &yaml_errors, on_doc, &o);
	cr_assert_eq(yaml_errors, 0);
	diags_free(&o.diags);
	*n_errors = o.n_errors;
	if (o.n_errors) {
		config_free(o.cfg);
		free(o.cfg);
		return NULL;
	}
	return o.cfg;
}

static struct xm_config *parse(const char *json, const char *kind, const char *api, int *n_errors)
{
	return parse_as("key", json, kind, api, n_errors);
}

static struct api_change change(const char *key, const char *json)
{
	struct api_change ch = { .key = strdup(key) };
	int n_errors;

	if (json) {
		ch.objs = parse_as(key, json, "Service", "v1", &n_errors);
		cr_assert_not_null(ch.objs);
	}
	return ch;
}

static const char svc_a[] = "{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\"},\"spec\":{\"clusterIP\":\"10.96.0.1\","
			    "\"ports\":[{\"port\":80}]}}";
static const char svc_b[] = "{\"metadata\":{\"name\":\"b\",\"namespace\":\"n\"},\"spec\":{\"clusterIP\":\"10.96.0.2\","
			    "\"ports\":[{\"port\":80}]}}";
static const char svc_b2[] = "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"b\",\"namespace\":"
			     "\"n\"},\"spec\":{\"clusterIP\":\"10.96.0.2\",\"ports\":[{\"name\":\"a\",\"port\":80},{"
			     "\"name\":\"b\",\"port\":81}]}}";

static size_t load(struct xm_config_cache *c, struct xm_config *cfg)
{
	struct xm_diags diags = { 0 };

	cr_assert_eq(config_load_cached(c, NULL, 0, cfg, &diags), 0, "%s", diags.n ? diags.items[0].msg : "");
	diags_free(&diags);
	return cfg->n_services;
}

Test(kube_objects, puts_deletes_and_modifications_by_key)
{
	struct xm_config_cache *c = config_cache_new();
	struct api_change batch1[] = { change("Service/n/b", svc_b), change("Service/n/a", svc_a),
				       change("Service/n/c", svc_a), change("Service/n/c", NULL) };
	struct api_change batch2[] = { change("Service/n/a", NULL), change("Service/n/b", svc_b2),
				       change("Service/n/zz", NULL) };
	struct xm_config cfg;

	cr_assert_not_null(c);
	cr_assert_eq(cache_api_apply(c, batch1, 4), 0);
	cr_assert_eq(c->n_api, 2);
	cr_assert_eq(load(c, &cfg), 2);
	cr_expect_str_eq(cfg.services[0].name, "a"); /* key order, not arrival order */
	cr_expect_str_eq(cfg.services[1].name, "b");
	config_free(&cfg);
	cr_assert_eq(cache_api_apply(c, batch2, 3), 0);
	cr_assert_eq(load(c, &cfg), 1);
	cr_expect_str_eq(cfg.services[0].name, "b");
	cr_expect_eq(cfg.services[0].n_ports, 2);
	config_free(&cfg);
	config_cache_free(c);
}

Test(kube_objects, many_objects_stay_sorted)
{
	struct xm_config_cache *c = config_cache_new();
	struct api_change *b = calloc(1000, sizeof(*b));
	struct xm_config cfg;
	char key[64];

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(key, sizeof(key), "Service/n/s%04d", (i * 7919 + round) % 1000);
			b[i] = change(key, (i % 3) || !round ? svc_a : NULL);
		}
		cr_assert_eq(cache_api_apply(c, b, 1000), 0);
		for (size_t i = 1; i < c->n_api; i++)
			cr_assert_lt(strcmp(c->api[i - 1]->key, c->api[i]->key), 0);
	}
	cr_expect_lt(c->n_api, 1000);
	cr_expect_gt(c->n_api, 600);
	/* Every object is the same Service a/n: validation refuses the duplicates, which is not this test's. */
	(void)cfg;
	free(b);
	config_cache_free(c);
}

static struct api_change dr_change(const char *host)
{
	char json[256];
	struct api_change ch = { .key = strdup("DestinationRule/n/r") };
	int n_errors;

	snprintf(json, sizeof(json), "{\"metadata\":{\"name\":\"r\",\"namespace\":\"n\"},\"spec\":{\"host\":\"%s\"}}",
		 host);
	ch.objs = parse_as(ch.key, json, "DestinationRule", "networking.istio.io/v1", &n_errors);
	cr_assert_not_null(ch.objs);
	return ch;
}

Test(kube_objects, an_error_involving_other_objects_leaves_out_the_api_object_alone)
{
	struct xm_config_cache *c = config_cache_new();
	struct api_change b1[] = { change("Service/n/a", svc_a), dr_change("b") }; /* no Service b */
	struct api_change b2[] = { change("Service/n/b", svc_b) };
	struct xm_config cfg;

	cr_assert_eq(cache_api_apply(c, b1, 2), 0);
	cr_assert_eq(load(c, &cfg), 1, "Service a applies");
	cr_expect_eq(cfg.n_rules, 0);
	cr_expect_eq(c->n_excluded, 1);
	cr_expect_not_null(strstr(c->api[0]->why, "matches no Service"), "%s", c->api[0]->why);
	config_free(&cfg);
	/* Service b comes: the rule applies again. */
	cr_assert_eq(cache_api_apply(c, b2, 1), 0);
	cr_assert_eq(load(c, &cfg), 2);
	cr_expect_eq(cfg.n_rules, 1);
	cr_expect_eq(c->n_excluded, 0);
	config_free(&cfg);
	config_cache_free(c);
}

Test(kube_objects, an_invalid_object_reports_and_is_not_kept)
{
	int n_errors = 0;
	struct xm_config *cfg =
	    parse("{\"metadata\":{\"name\":\"bad\",\"namespace\":\"n\"},\"spec\":{\"ports\":[{\"port\":99999}]}}",
		  "Service", "v1", &n_errors);

	cr_expect_null(cfg);
	cr_expect_gt(n_errors, 0);
}

Test(kube_objects, list_items_take_the_list_kind_and_an_object_of_another_group_is_ignored)
{
	int n_errors = 0;
	struct xm_config *cfg = parse("{\"metadata\":{\"name\":\"r\",\"namespace\":\"n\"},\"spec\":{\"host\":\"a\"}}",
				      "DestinationRule", "networking.istio.io/v1", &n_errors);

	cr_assert_not_null(cfg);
	cr_expect_eq(cfg->n_rules, 1);
	config_free(cfg);
	free(cfg);
	cfg = parse("{\"kind\":\"Service\",\"apiVersion\":\"example.com/v1\",\"metadata\":{\"name\":\"x\"}}", "Service",
		    "v1", &n_errors);
	cr_assert_not_null(cfg);
	cr_expect_eq(cfg->n_services, 0);
	config_free(cfg);
	free(cfg);
}

/* An AuthorizationPolicy parses into the model (unknown fields ignored); RequestAuthentication, watched and not
 * enforced, parses (any spec) without error to no object. Both are kept by key and a build with them loads. */
Test(kube_objects, the_security_kinds_are_kept_and_never_fail_a_build)
{
	static const char ap[] = "{\"metadata\":{\"name\":\"deny\",\"namespace\":\"n\"},\"spec\":{\"action\":\"DENY\","
				 "\"rules\":[{\"from\":[{\"source\":{\"principals\":[\"x\"]}}]}],\"bogus\":1}}";
	static const char ra[] = "{\"metadata\":{\"name\":\"jwt\",\"namespace\":\"n\"},\"spec\":{\"jwtRules\":7}}";
	struct xm_config_cache *c = config_cache_new();
	struct api_change batch[3] = { change("Service/n/a", svc_a) };
	struct xm_config cfg;
	int n_errors = -1;

	cr_assert_not_null(c);
	batch[1] = (struct api_change){ .key = strdup("AuthorizationPolicy/n/deny"),
					.objs = parse(ap, "AuthorizationPolicy", "security.istio.io/v1", &n_errors) };
	cr_assert_not_null(batch[1].objs);
	cr_expect_eq(n_errors, 0);
	batch[2] =
	    (struct api_change){ .key = strdup("RequestAuthentication/n/jwt"),
				 .objs = parse(ra, "RequestAuthentication", "security.istio.io/v1beta1", &n_errors) };
	cr_assert_not_null(batch[2].objs);
	cr_expect_eq(n_errors, 0);
	cr_assert_eq(cache_api_apply(c, batch, 3), 0);
	cr_assert_eq(c->n_api, 3);
	cr_assert_eq(load(c, &cfg), 1);
	cr_expect_eq(cfg.n_authz_policies, 1);
	config_free(&cfg);
	config_cache_free(c);
}
