// SPDX-License-Identifier: Apache-2.0
/*
 * deploy/: every file reads with the project's YAML reader and is a resource of the kustomization; the
 * ClusterRole grants get/list/watch on exactly the kinds the API client watches (kube_watched_kinds), and no
 * other verb or resource; the binding ties it to the DaemonSet's service account; the DaemonSet has what the
 * agent needs on a node (privileged, host network, bpffs and cgroup mounts, /run/xmesh, --kubernetes,
 * --node from spec.nodeName, readiness on /healthz/ready, maxUnavailable 1, tolerations for every node).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/model.h"
#include "config/yaml_tree.h"
#include "kube/client.h"
#include "kube/stream.h"

#define MAX_DOCS 32

/* The file and kind of every deploy/ document. */
struct doc {
	char file[64];
	char kind[64];
};

static char deploy_dir[256];
static struct doc docs[MAX_DOCS];
static size_t n_docs;

static void find_dir(void)
{
	const char *slash = strrchr(__FILE__, '/');

	snprintf(deploy_dir, sizeof(deploy_dir), "%.*s/../../deploy", slash ? (int)(slash - __FILE__) : 1,
		 slash ? __FILE__ : ".");
}

typedef void (*doc_check)(const struct ynode *root, void *arg);

struct walk {
	const char *want_kind; /* NULL: every document */
	doc_check fn;
	void *arg;
	const char *file;
	int docs;
};

static void on_doc(void *arg, const struct ydoc *d)
{
	struct walk *w = arg;
	const char *kind;

	if (!d->root)
		return;
	w->docs++;
	kind = ynode_str(d->root, "kind");
	cr_assert_not_null(kind, "%s: a document without kind", w->file);
	if (n_docs < MAX_DOCS && !w->want_kind && !w->fn) {
		snprintf(docs[n_docs].file, sizeof(docs[n_docs].file), "%s", w->file);
		snprintf(docs[n_docs].kind, sizeof(docs[n_docs].kind), "%s", kind);
		n_docs++;
	}
	if (w->fn && (!w->want_kind || !strcmp(kind, w->want_kind)))
		w->fn(d->root, w->arg);
}

/* Reads every *.yaml of deploy/ (each must parse without error); fn sees the documents of want_kind. */
static void walk(const char *want_kind, doc_check fn, void *arg)
{
	struct dirent *de;
	DIR *dir;

	find_dir();
	dir = opendir(deploy_dir);
	cr_assert_not_null(dir, "%s", deploy_dir);
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		struct walk w = { .want_kind = want_kind, .fn = fn, .arg = arg, .file = de->d_name };
		struct xm_diags diags = { 0 };
		char path[512];
		int n_errors = 0;
		FILE *f;

		if (len < 6 || strcmp(de->d_name + len - 5, ".yaml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", deploy_dir, de->d_name);
		f = fopen(path, "re");
		cr_assert_not_null(f, "%s", path);
		ytree_read_stream(f, de->d_name, &diags, &n_errors, on_doc, &w);
		fclose(f);
		cr_assert_eq(n_errors, 0, "%s: %s", path, diags.n ? diags.items[0].msg : "");
		cr_assert_gt(w.docs, 0, "%s is empty", path);
		diags_free(&diags);
	}
	closedir(dir);
}

static bool seq_has(const struct ynode *seq, const char *s)
{
	for (size_t i = 0; seq && seq->kind == YNODE_SEQ && i < seq->n; i++)
		if (seq->kids[i]->kind == YNODE_SCALAR && !strcmp(seq->kids[i]->str, s))
			return true;
	return false;
}

Test(deploy, every_file_reads_and_is_in_the_kustomization)
{
	struct dirent *de;
	DIR *dir;
	FILE *f;
	char path[512], text[4096];
	size_t len;

	n_docs = 0;
	walk(NULL, NULL, NULL);
	cr_assert_geq(n_docs, 6);
	snprintf(path, sizeof(path), "%s/kustomization.yaml", deploy_dir);
	f = fopen(path, "re");
	cr_assert_not_null(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	text[len] = '\0';
	fclose(f);
	dir = opendir(deploy_dir);
	while ((de = readdir(dir))) {
		char item[128];

		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") || !strcmp(de->d_name, "kustomization.yaml"))
			continue;
		snprintf(item, sizeof(item), "- %s\n", de->d_name);
		cr_expect_not_null(strstr(text, item), "%s is not among the kustomization's resources", de->d_name);
	}
	closedir(dir);
}

struct grants {
	bool granted[16];
	int extra;
	char extra_what[256];
};

static void check_role(const struct ynode *root, void *arg)
{
	struct grants *g = arg;
	const struct ynode *rules = ymap_get(root, "rules", NULL);
	size_t n;
	const struct kube_kind *kinds = kube_watched_kinds(&n);

	cr_assert(rules && rules->kind == YNODE_SEQ);
	for (size_t r = 0; r < rules->n; r++) {
		const struct ynode *groups = ymap_get(rules->kids[r], "apiGroups", NULL);
		const struct ynode *res = ymap_get(rules->kids[r], "resources", NULL);
		const struct ynode *verbs = ymap_get(rules->kids[r], "verbs", NULL);

		cr_assert(groups && res && verbs);
		/* Read-only: exactly get, list, watch. */
		cr_expect_eq(verbs->n, 3, "rule %zu: verbs other than get/list/watch", r);
		cr_expect(seq_has(verbs, "get") && seq_has(verbs, "list") && seq_has(verbs, "watch"));
		for (size_t gi = 0; gi < groups->n; gi++) {
			for (size_t ri = 0; ri < res->n; ri++) {
				bool known = false;

				cr_expect_str_neq(groups->kids[gi]->str, "*");
				cr_expect_str_neq(res->kids[ri]->str, "*");
				for (size_t k = 0; k < n; k++) {
					if (!strcmp(kinds[k].group, groups->kids[gi]->str) &&
					    !strcmp(kinds[k].resource, res->kids[ri]->str)) {
						g->granted[k] = true;
						known = true;
					}
				}
				if (!known) {
					g->extra++;
					snprintf(g->extra_what, sizeof(g->extra_what), "%s/%s", groups->kids[gi]->str,
						 res->kids[ri]->str);
				}
			}
		}
	}
}

Test(deploy, the_cluster_role_grants_exactly_the_watched_kinds)
{
	struct grants g = { 0 };
	size_t n;
	const struct kube_kind *kinds = kube_watched_kinds(&n);

	cr_assert_leq(n, 16);
	walk("ClusterRole", check_role, &g);
	for (size_t k = 0; k < n; k++)
		cr_expect(g.granted[k], "the ClusterRole does not grant %s.%s (%s)", kinds[k].resource, kinds[k].group,
			  kinds[k].kind);
	cr_expect_eq(g.extra, 0, "the ClusterRole grants a resource the agent does not watch: %s", g.extra_what);
}

struct names {
	char sa[64], sa_ns[64], bound_role[64], bound_sa[64], bound_ns[64], role[64], ds_sa[64], ds_ns[64];
};

static void copy(char *dst, const char *src)
{
	snprintf(dst, 64, "%s", src ? src : "");
}

static void on_sa(const struct ynode *root, void *arg)
{
	struct names *n = arg;
	const struct ynode *md = ymap_get(root, "metadata", NULL);

	copy(n->sa, ynode_str(md, "name"));
	copy(n->sa_ns, ynode_str(md, "namespace"));
}

static void on_role_name(const struct ynode *root, void *arg)
{
	copy(((struct names *)arg)->role, ynode_str(ymap_get(root, "metadata", NULL), "name"));
}

static void on_binding(const struct ynode *root, void *arg)
{
	struct names *n = arg;
	const struct ynode *subjects = ymap_get(root, "subjects", NULL);

	cr_assert_str_eq(ynode_str(ymap_get(root, "roleRef", NULL), "kind"), "ClusterRole");
	copy(n->bound_role, ynode_str(ymap_get(root, "roleRef", NULL), "name"));
	cr_assert(subjects && subjects->n == 1);
	cr_expect_str_eq(ynode_str(subjects->kids[0], "kind"), "ServiceAccount");
	copy(n->bound_sa, ynode_str(subjects->kids[0], "name"));
	copy(n->bound_ns, ynode_str(subjects->kids[0], "namespace"));
}

static const struct ynode *path(const struct ynode *n, const char *const *keys)
{
	for (; *keys && n; keys++)
		n = ymap_get(n, *keys, NULL);
	return n;
}

static void on_daemonset(const struct ynode *root, void *arg)
{
	struct names *n = arg;
	const struct ynode *spec = path(root, (const char *const[]){ "spec", "template", "spec", NULL });
	const struct ynode *c, *args, *env, *mounts, *tol;
	bool node_from_field = false, privileged;
	long long max_unavail = 0;

	copy(n->ds_ns, ynode_str(ymap_get(root, "metadata", NULL), "namespace"));
	cr_assert_not_null(spec);
	copy(n->ds_sa, ynode_str(spec, "serviceAccountName"));
	cr_expect_str_eq(ymap_get(spec, "hostNetwork", NULL)->str, "true");
	cr_expect(ynode_int(path(root, (const char *const[]){ "spec", "updateStrategy", "rollingUpdate", NULL }),
			    "maxUnavailable", &max_unavail) &&
		  max_unavail == 1);
	tol = ymap_get(spec, "tolerations", NULL);
	cr_expect(tol && tol->n == 1 && !strcmp(ynode_str(tol->kids[0], "operator"), "Exists"),
		  "tolerations: every taint (operator Exists)");
	c = ymap_get(spec, "containers", NULL)->kids[0];
	privileged = !strcmp(path(c, (const char *const[]){ "securityContext", "privileged", NULL })->str, "true");
	cr_expect(privileged);
	args = ymap_get(c, "args", NULL);
	cr_expect(seq_has(args, "--kubernetes"));
	cr_expect(seq_has(args, "--node=$(NODE_NAME)"));
	env = ymap_get(c, "env", NULL);
	for (size_t i = 0; env && i < env->n; i++)
		if (!strcmp(ynode_str(env->kids[i], "name"), "NODE_NAME"))
			node_from_field = !strcmp(
			    ynode_str(path(env->kids[i], (const char *const[]){ "valueFrom", "fieldRef", NULL }),
				      "fieldPath"),
			    "spec.nodeName");
	cr_expect(node_from_field, "NODE_NAME comes from the downward API's spec.nodeName");
	cr_expect_str_eq(ynode_str(path(c, (const char *const[]){ "readinessProbe", "httpGet", NULL }), "path"),
			 "/healthz/ready");
	cr_expect_not_null(path(c, (const char *const[]){ "resources", "requests", "memory", NULL }));
	cr_expect_not_null(path(c, (const char *const[]){ "resources", "requests", "cpu", NULL }));
	mounts = ymap_get(c, "volumeMounts", NULL);
	cr_assert_not_null(mounts);
	{
		static const char *const want[] = { "/sys/fs/bpf", "/sys/fs/cgroup", "/run/xmesh", "/run/netns" };

		for (size_t w = 0; w < 4; w++) {
			bool found = false;

			for (size_t i = 0; i < mounts->n; i++)
				found = found || !strcmp(ynode_str(mounts->kids[i], "mountPath"), want[w]);
			cr_expect(found, "no volume mounted at %s", want[w]);
		}
		/* the pods' namespaces appear after the agent starts: the host's later mounts must propagate */
		for (size_t i = 0; i < mounts->n; i++)
			if (!strcmp(ynode_str(mounts->kids[i], "mountPath"), "/run/netns"))
				cr_expect_str_eq(ynode_str(mounts->kids[i], "mountPropagation"), "HostToContainer");
	}
}

Test(deploy, the_binding_ties_the_role_to_the_daemonsets_account)
{
	struct names n = { 0 };

	walk("ServiceAccount", on_sa, &n);
	walk("ClusterRole", on_role_name, &n);
	walk("ClusterRoleBinding", on_binding, &n);
	walk("DaemonSet", on_daemonset, &n);
	cr_expect_str_eq(n.bound_role, n.role);
	cr_expect_str_eq(n.bound_sa, n.sa);
	cr_expect_str_eq(n.bound_ns, n.sa_ns);
	cr_expect_str_eq(n.ds_sa, n.sa);
	cr_expect_str_eq(n.ds_ns, n.sa_ns);
}
