// SPDX-License-Identifier: Apache-2.0
/*
 * What the HBONE client says about its source, byte for byte as ztunnel's create_hbone_request
 * (src/proxy/outbound.rs: baggage(), build_forwarded()): the baggage formatter, Istio's workload kind and name
 * from a pod's labels (istiod's GetDeployMetaFromPod heuristics), the canonical service, the Service hostname.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile.h"
#include "compile/identity.h"
#include "daemon/hbone_baggage.h"
#include "hbone/hbone.h"

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xm_label *)a)->key, ((const struct xm_label *)b)->key);
}

/* A workload of namespace ns, pod name pod, revision rev, with labels "k=v" (NULL-terminated). */
static struct xm_workload *workload(const char *ns, const char *pod, const char *rev, const char *const *kv)
{
	struct xm_workload *w = calloc(1, sizeof(*w));
	size_t n = 0;

	cr_assert_not_null(w);
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->pod, sizeof(w->pod), "%s", pod);
	snprintf(w->canonical_revision, sizeof(w->canonical_revision), "%s", rev);
	while (kv && kv[n])
		n++;
	w->labels = calloc(n ? n : 1, sizeof(*w->labels));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');

		snprintf(w->labels[i].key, sizeof(w->labels[i].key), "%.*s", (int)(eq - kv[i]), kv[i]);
		snprintf(w->labels[i].value, sizeof(w->labels[i].value), "%s", eq + 1);
	}
	w->n_labels = n;
	qsort(w->labels, n, sizeof(*w->labels), label_cmp); /* as compile/identity.c keeps them */
	return w;
}

static void workload_free(struct xm_workload *w)
{
	free(w->labels);
	free(w);
}

Test(hbone_baggage, format_exact_bytes)
{
	char buf[512];
	int n;
	struct hbone_baggage b = { .cluster = "Kubernetes",
				   .ns = "shop",
				   .workload_kind = "deployment",
				   .workload_name = "reviews-v1",
				   .service = "reviews",
				   .version = "v1",
				   .region = "",
				   .zone = "" };
	static const char want[] = "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=reviews-v1,"
				   "service.name=reviews,service.version=v1,cloud.region=,cloud.availability_zone=";

	cr_assert_eq(hbone_format_baggage(buf, sizeof(buf), &b), (int)strlen(want));
	cr_expect_str_eq(buf, want);
	b.region = "us-east1", b.zone = "us-east1-b";
	n = hbone_format_baggage(buf, sizeof(buf), &b);
	cr_assert_eq(n, (int)strlen(want) + 18);
	cr_expect(strstr(buf, ",cloud.region=us-east1,cloud.availability_zone=us-east1-b") != NULL, "%s", buf);
	/* exactly the room it needs, and one byte less */
	cr_expect_eq(hbone_format_baggage(buf, (size_t)n + 1, &b), n);
	cr_expect_eq(hbone_format_baggage(buf, (size_t)n, &b), -ENAMETOOLONG);
	cr_expect_str_eq(buf, "");
}

Test(hbone_baggage, format_refuses_what_a_value_cannot_hold)
{
	static const char *const bad[] = { "a,b", "a;b", "a b", "a\"b", "a\\b", "a\tb", "\xc3\xa9" };
	char buf[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hbone_baggage b = { .cluster = "c",
					   .ns = "n",
					   .workload_kind = "pod",
					   .workload_name = bad[i],
					   .service = "s",
					   .version = "v",
					   .region = "",
					   .zone = "" };

		cr_expect_eq(hbone_format_baggage(buf, sizeof(buf), &b), -EINVAL, "%s", bad[i]);
		cr_expect_str_eq(buf, "");
	}
	{
		struct hbone_baggage b = { .cluster = "c",
					   .ns = "n",
					   .workload_kind = "Pod",
					   .workload_name = "w",
					   .service = "s",
					   .version = "v",
					   .region = "",
					   .zone = "" };

		cr_expect_eq(hbone_format_baggage(buf, sizeof(buf), &b), -EINVAL, "the kind is part of a key");
	}
}

struct kind_case {
	const char *pod;
	const char *labels[4];
	const char *kind, *name;
};

Test(hbone_baggage, workload_kind_and_name_as_istiod)
{
	static const struct kind_case cases[] = {
		/* a Deployment's pod: ReplicaSet reviews-v1-5c8b9d6f4, its pod reviews-v1-5c8b9d6f4-x7k2p */
		{ "reviews-v1-5c8b9d6f4-x7k2p",
		  { "pod-template-hash=5c8b9d6f4", "app=reviews" },
		  "deployment",
		  "reviews-v1" },
		/* a Job's pod, the label of Kubernetes 1.27+ and the older one */
		{ "pi-x5k2v", { "batch.kubernetes.io/job-name=pi", "job-name=pi" }, "job", "pi" },
		{ "pi-x5k2v", { "job-name=pi" }, "job", "pi" },
		/* a CronJob's Job: <cronjob>-<minutes since the epoch>, 8 to 10 digits */
		{ "backup-28391040-abcde", { "job-name=backup-28391040" }, "cronjob", "backup" },
		{ "x-1234567-abcde", { "job-name=x-1234567" }, "job", "x-1234567" },	     /* 7 digits */
		{ "x-12345678901-a", { "job-name=x-12345678901" }, "job", "x-12345678901" }, /* 11 */
		/* a bare pod, a StatefulSet's or DaemonSet's (istiod: the pod itself) */
		{ "debug", { NULL }, "pod", "debug" },
		{ "db-0",
		  { "controller-revision-hash=db-7d9f", "statefulset.kubernetes.io/pod-name=db-0" },
		  "pod",
		  "db-0" },
		/* a hash label that the name does not carry: nothing to strip, the pod */
		{ "odd", { "pod-template-hash=5c8b9d6f4" }, "pod", "odd" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xm_workload *w = workload("ns", cases[i].pod, "latest", cases[i].labels);
		char name[XM_NAME_MAX];

		cr_expect_str_eq(workload_kind_name(w, name, sizeof(name)), cases[i].kind, "%s", cases[i].pod);
		cr_expect_str_eq(name, cases[i].name, "%s", cases[i].pod);
		workload_free(w);
	}
}

Test(hbone_baggage, workload_baggage_exact_bytes)
{
	static const char *const dep[] = { "pod-template-hash=5c8b9d6f4", "app=reviews", "version=v1", NULL };
	static const char *const canon[] = { "pod-template-hash=7f", "app=web",
					     "service.istio.io/canonical-name=frontend", NULL };
	struct xm_workload *w = workload("shop", "reviews-v1-5c8b9d6f4-x7k2p", "v1", dep);
	char buf[512];

	cr_assert_gt(workload_baggage(w, "Kubernetes", buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=reviews-v1,"
			      "service.name=reviews,service.version=v1,cloud.region=,cloud.availability_zone=");
	workload_free(w);

	/* the canonical-name label first; */
	w = workload("web", "web-7f-abcde", "latest", canon);
	cr_assert_gt(workload_baggage(w, "east", buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "k8s.cluster.name=east,k8s.namespace.name=web,k8s.deployment.name=web,"
			      "service.name=frontend,service.version=latest,cloud.region=,cloud.availability_zone=");
	workload_free(w);

	/* without labels, the workload name as istiod derives it (the Job's here, not the pod's) */
	w = workload("batch", "pi-x5k2v", "latest", (const char *const[]){ "job-name=pi", NULL });
	cr_assert_gt(workload_baggage(w, "Kubernetes", buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "k8s.cluster.name=Kubernetes,k8s.namespace.name=batch,k8s.job.name=pi,service.name=pi,"
			      "service.version=latest,cloud.region=,cloud.availability_zone=");
	workload_free(w);

	/* a label value that baggage cannot carry unencoded: no header rather than a broken one */
	w = workload("a", "p", "latest", (const char *const[]){ "app=a,b", NULL });
	cr_expect_eq(workload_baggage(w, "Kubernetes", buf, sizeof(buf)), -EINVAL);
	cr_expect_str_eq(buf, "");
	workload_free(w);
}

Test(hbone_baggage, service_hostname)
{
	struct xm_lb_service svc = { 0 };
	char buf[64];

	snprintf(svc.ns, sizeof(svc.ns), "default");
	snprintf(svc.name, sizeof(svc.name), "web");
	cr_expect_eq(service_hostname(&svc, buf, sizeof(buf)), 29);
	cr_expect_str_eq(buf, "web.default.svc.cluster.local");
	cr_expect_eq(service_hostname(&svc, buf, 29), -ENAMETOOLONG);
	cr_expect_str_eq(buf, "");
}
