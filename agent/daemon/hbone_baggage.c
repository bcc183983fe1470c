// SPDX-License-Identifier: Apache-2.0
#include "daemon/hbone_baggage.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "compile/compile.h"
#include "compile/identity.h"
#include "hbone/hbone.h"

static const char *label(const struct xm_workload *w, const char *key)
{
	const char *v = workload_label(w, key);

	return v && *v ? v : NULL;
}

/* A CronJob's Job is "<cronjob>-<scheduled time in minutes>": istiod's cronJobNameRegexp (.+)-\d{8,10}$. */
static size_t cronjob_prefix(const char *job)
{
	size_t n = strlen(job), digits = 0;

	while (digits < n && isdigit((unsigned char)job[n - 1 - digits]))
		digits++;
	if (digits < 8 || digits > 10 || digits + 2 > n || job[n - 1 - digits] != '-')
		return 0;
	return n - 1 - digits;
}

const char *workload_kind_name(const struct xm_workload *w, char *name, size_t len)
{
	const char *hash = label(w, "pod-template-hash"), *job = label(w, "batch.kubernetes.io/job-name");
	char infix[XM_LABEL_MAX + 3];
	const char *at;

	if (hash) {
		/* The ReplicaSet is "<deployment>-<hash>", its pods "<replicaset>-<suffix>". */
		snprintf(infix, sizeof(infix), "-%s-", hash);
		at = strstr(w->pod, infix);
		if (at && at > w->pod) {
			snprintf(name, len, "%.*s", (int)(at - w->pod), w->pod);
			return "deployment";
		}
	}
	if (!job)
		job = label(w, "job-name"); /* before Kubernetes 1.27 */
	if (job) {
		size_t n = cronjob_prefix(job);

		snprintf(name, len, "%.*s", (int)(n ? n : strlen(job)), job);
		return n ? "cronjob" : "job";
	}
	snprintf(name, len, "%s", w->pod);
	return "pod";
}

int workload_baggage(const struct xm_workload *w, const char *cluster, char *buf, size_t len)
{
	static const char *const service_keys[] = { "service.istio.io/canonical-name", "app.kubernetes.io/name",
						    "app" };
	char name[XM_NAME_MAX];
	struct hbone_baggage b = {
		.cluster = cluster,
		.ns = w->ns,
		.version = w->canonical_revision,
		.region = w->region,
		.zone = w->zone,
	};

	b.workload_kind = workload_kind_name(w, name, sizeof(name));
	b.workload_name = name;
	/* istiod's canonical service falls back to the workload name as it derives it, not to the pod's */
	for (size_t i = 0; i < sizeof(service_keys) / sizeof(service_keys[0]) && !b.service; i++)
		b.service = label(w, service_keys[i]);
	if (!b.service)
		b.service = name;
	return hbone_format_baggage(buf, len, &b);
}

int service_hostname(const struct xm_lb_service *svc, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s.%s.svc.cluster.local", svc->name, svc->ns);

	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return n;
}
