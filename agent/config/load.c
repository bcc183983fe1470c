/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_load: paths (files, directories of *.yaml / *.yml in name order, "-" for stdin) → YAML documents →
 * objects (a document, or the items of a List) → the parser of their kind; then cross-reference validation.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cache.h"
#include "config/diag.h"
#include "config/fields.h"
#include "config/model.h"
#include "config/objects.h"
#include "config/yaml_tree.h"

#define LIST_MAX_DEPTH 4 /* a List inside a List is not Kubernetes, but bound the recursion anyway */

struct file_id {
	dev_t dev;
	ino_t ino;
};

struct loader {
	struct xm_config *cfg;
	struct xm_diags *diags;
	int n_errors;
	int io_err; /* the first I/O error, negative errno */
	const char *file;
	struct file_id *seen; /* files already read: a file named twice is read once */
	size_t n_seen;
	struct xm_config_cache *cache; /* config_load_cached: cfg borrows every object and file name */
};

enum kind_id {
	KIND_SERVICE,
	KIND_ENDPOINT_SLICE,
	KIND_POD,
	KIND_NODE,
	KIND_DESTINATION_RULE,
	KIND_VIRTUAL_SERVICE,
	KIND_ENVOY_FILTER,
	KIND_PEER_AUTHENTICATION,
	KIND_AUTHORIZATION_POLICY,
};

struct kind_desc {
	const char *kind;
	const char *group;	 /* "" for the core API */
	const char *versions[4]; /* supported versions of the group */
	const char *display;	 /* in messages */
	bool namespaced;
	bool dns1035_name; /* Service names must be DNS labels starting with a letter */
	enum kind_id id;
};

static const struct kind_desc kinds[] = {
	{ "Service", "", { "v1" }, "service", true, true, KIND_SERVICE },
	{ "EndpointSlice", "discovery.k8s.io", { "v1", "v1beta1" }, "endpointslice", true, false, KIND_ENDPOINT_SLICE },
	{ "Pod", "", { "v1" }, "pod", true, false, KIND_POD },
	{ "Node", "", { "v1" }, "node", false, false, KIND_NODE },
	{ "DestinationRule",
	  "networking.istio.io",
	  { "v1", "v1beta1", "v1alpha3" },
	  "destinationrule",
	  true,
	  false,
	  KIND_DESTINATION_RULE },
	{ "VirtualService",
	  "networking.istio.io",
	  { "v1", "v1beta1", "v1alpha3" },
	  "virtualservice",
	  true,
	  false,
	  KIND_VIRTUAL_SERVICE },
	/* Istio serves EnvoyFilter as v1alpha3 only. */
	{ "EnvoyFilter", "networking.istio.io", { "v1alpha3" }, "envoyfilter", true, false, KIND_ENVOY_FILTER },
	{ "PeerAuthentication",
	  "security.istio.io",
	  { "v1", "v1beta1" },
	  "peerauthentication",
	  true,
	  false,
	  KIND_PEER_AUTHENTICATION },
	{ "AuthorizationPolicy",
	  "security.istio.io",
	  { "v1", "v1beta1" },
	  "authorizationpolicy",
	  true,
	  false,
	  KIND_AUTHORIZATION_POLICY },
};

/* A file name that diagnostics point at, kept in cfg->files (in load order: diagnostics sort by it). */
static const char *intern_file(struct loader *l, const char *name)
{
	char *copy = l->cache ? (char *)cache_intern(l->cache, name) : strdup(name);
	char **slot;

	if (!copy)
		return NULL;
	slot = array_push(&l->cfg->files, &l->cfg->n_files, sizeof(*l->cfg->files));
	if (!slot) {
		if (!l->cache)
			free(copy);
		return NULL;
	}
	*slot = copy;
	return copy;
}

static void io_error(struct loader *l, const char *file, int err)
{
	struct xm_loc loc = { .file = file };

	diags_add(l->diags, &loc, "%s", strerror(err));
	l->n_errors++;
	if (!l->io_err)
		l->io_err = -err;
}

static void describe_object(struct obj_ctx *c, const struct kind_desc *k)
{
	if (k->namespaced)
		snprintf(c->what, sizeof(c->what), "%s %s/%s", k->display, c->ns, c->name);
	else
		snprintf(c->what, sizeof(c->what), "%s %s", k->display, c->name);
}

/* metadata.name and metadata.namespace; false when the object cannot be identified. */
static bool read_metadata(struct obj_ctx *c, const struct kind_desc *k, const struct ynode *obj,
			  const struct ynode **metadata)
{
	const struct ynode *name_node;
	char q[QUOTE_BUF];
	int r;

	snprintf(c->what, sizeof(c->what), "%s", k->display);
	*metadata = get_map(c, obj, "metadata", NULL);
	name_node = map_value(c, *metadata, "name");
	c->loc = obj_loc_of(c, name_node ? name_node : obj);
	snprintf(c->ns, sizeof(c->ns), "default");
	if (k->namespaced) {
		const struct ynode *ns_node = map_value(c, *metadata, "namespace");

		r = node_str(c, ns_node, "metadata.namespace", c->ns, sizeof(c->ns));
		if (r == FIELD_ABSENT || (r == FIELD_SET && !c->ns[0]))
			snprintf(c->ns, sizeof(c->ns), "default");
		else if (r == FIELD_SET && !is_dns1123_label(c->ns))
			obj_error(c, ns_node, "metadata.namespace %s is not a valid namespace name (RFC 1123 label)",
				  quoted(q, c->ns));
	}
	r = node_str(c, name_node, "metadata.name", c->name, sizeof(c->name));
	if (r == FIELD_ERR && !c->name[0])
		return false;
	if (r == FIELD_ABSENT || !c->name[0]) {
		obj_error(c, *metadata ? *metadata : obj, "metadata.name is required");
		return false;
	}
	describe_object(c, k);
	if (r == FIELD_SET && k->dns1035_name && !is_dns1035_label(c->name))
		obj_error(c, name_node, "metadata.name %s is not a valid Service name (RFC 1035 label)",
			  quoted(q, c->name));
	else if (r == FIELD_SET && !k->dns1035_name && !is_dns1123_subdomain(c->name))
		obj_error(c, name_node, "metadata.name %s is not a valid name (RFC 1123 subdomain)",
			  quoted(q, c->name));
	return true;
}

static void parse_object_of_kind(struct loader *l, const struct kind_desc *k, const struct ynode *obj)
{
	struct obj_ctx c = { .cfg = l->cfg, .diags = l->diags, .n_errors = &l->n_errors, .file = l->file };
	const struct ynode *metadata;

	if (!read_metadata(&c, k, obj, &metadata))
		return;
	switch (k->id) {
	case KIND_SERVICE:
		parse_service(&c, obj);
		break;
	case KIND_ENDPOINT_SLICE:
		parse_endpoint_slice(&c, obj, metadata);
		break;
	case KIND_POD:
		parse_pod(&c, obj, metadata);
		break;
	case KIND_NODE:
		parse_node(&c, obj);
		break;
	case KIND_DESTINATION_RULE:
		parse_destination_rule(&c, obj);
		break;
	case KIND_VIRTUAL_SERVICE:
		parse_virtual_service(&c, obj);
		break;
	case KIND_ENVOY_FILTER:
		parse_envoy_filter(&c, obj);
		break;
	case KIND_PEER_AUTHENTICATION:
		parse_peer_authentication(&c, obj, metadata);
		break;
	case KIND_AUTHORIZATION_POLICY:
		parse_authorization_policy(&c, obj);
		break;
	}
}

/* The kind/apiVersion pair names one of ours: dispatch; other groups are other APIs and ignored. */
static void dispatch(struct obj_ctx *c, struct loader *l, const struct ynode *obj, const char *kind,
		     const char *api_version, const struct ynode *api_node)
{
	char group[128], q[QUOTE_BUF];
	const char *version;
	const char *slash;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind_desc *k = &kinds[i];

		if (strcmp(kind, k->kind) != 0)
			continue;
		if (!api_version[0]) {
			obj_error(c, obj, "apiVersion is required");
			return;
		}
		slash = strchr(api_version, '/');
		version = slash ? slash + 1 : api_version;
		snprintf(group, sizeof(group), "%.*s", slash ? (int)(slash - api_version) : 0, api_version);
		if (strcmp(group, k->group) != 0)
			return;
		for (size_t v = 0; v < 4 && k->versions[v]; v++) {
			if (strcmp(version, k->versions[v]) == 0) {
				parse_object_of_kind(l, k, obj);
				return;
			}
		}
		obj_error(c, api_node, "apiVersion %s is not supported for %s", quoted(q, api_version), kind);
		return;
	}
}

static void load_object(struct loader *l, const struct ynode *obj, const char *where, const char *list_kind,
			const char *list_api, int depth)
{
	struct obj_ctx c = { .cfg = l->cfg, .diags = l->diags, .n_errors = &l->n_errors, .file = l->file };
	char kind[128], api_version[128];
	const struct ynode *items;
	const struct ynode *api_node;
	size_t kind_len;
	char got[QUOTE_BUF + 16];
	int r;

	snprintf(c.what, sizeof(c.what), "%s", where);
	c.loc = obj_loc_of(&c, obj);
	if (!obj || obj->kind != YNODE_MAP) {
		obj_error(&c, obj, "expected a Kubernetes object (a mapping with apiVersion and kind), got %s",
			  ynode_describe(obj, got, sizeof(got)));
		return;
	}
	r = get_str(&c, obj, "kind", NULL, kind, sizeof(kind));
	if (r == FIELD_ERR)
		return;
	if (r == FIELD_ABSENT || !kind[0]) {
		if (!list_kind) {
			obj_error(&c, obj, "kind is required");
			return;
		}
		snprintf(kind, sizeof(kind), "%s", list_kind);
	}
	api_node = map_value(&c, obj, "apiVersion");
	r = node_str(&c, api_node, "apiVersion", api_version, sizeof(api_version));
	if (r == FIELD_ERR)
		return;
	if (r == FIELD_ABSENT && list_api)
		snprintf(api_version, sizeof(api_version), "%s", list_api);

	/* "List" (kubectl) holds any kinds; "ServiceList" etc. (the API) holds items without kind/apiVersion. */
	kind_len = strlen(kind);
	if (kind_len >= 4 && strcmp(kind + kind_len - 4, "List") == 0 && depth < LIST_MAX_DEPTH) {
		char item_kind[128];

		snprintf(item_kind, sizeof(item_kind), "%.*s", (int)(kind_len - 4), kind);
		items = get_seq(&c, obj, "items", NULL);
		for (size_t i = 0; items && i < items->n; i++) {
			char item_where[64];

			snprintf(item_where, sizeof(item_where), "items[%zu]", i);
			load_object(l, items->kids[i], item_where, item_kind[0] ? item_kind : NULL,
				    item_kind[0] ? api_version : NULL, depth + 1);
		}
		return;
	}
	dispatch(&c, l, obj, kind, api_version, api_node);
}

static void on_document(void *arg, const struct ydoc *doc)
{
	struct loader *l = arg;

	if (!doc->root || ynode_is_null(doc->root))
		return; /* empty documents ("---" at the end, comments only) are fine */
	load_object(l, doc->root, "document", NULL, NULL, 0);
}

static bool seen_before(struct loader *l, const struct stat *st)
{
	struct file_id *id;

	for (size_t i = 0; i < l->n_seen; i++) {
		if (l->seen[i].dev == st->st_dev && l->seen[i].ino == st->st_ino)
			return true;
	}
	id = array_push(&l->seen, &l->n_seen, sizeof(*l->seen));
	if (id) {
		id->dev = st->st_dev;
		id->ino = st->st_ino;
	}
	return false;
}

/* Parses one file into its cache entry: the entry's objects, diagnostics and error count. */
static void parse_into(struct loader *l, struct cached_file *cf, FILE *in)
{
	struct loader sub = { .cfg = &cf->objs, .diags = &cf->diags, .file = cf->objs.files[0] };

	ytree_read_stream(in, sub.file, sub.diags, &sub.n_errors, on_document, &sub);
	if (ferror(in)) {
		io_error(&sub, sub.file, EIO);
		cf->cacheable = false;
		if (!l->io_err)
			l->io_err = -EIO;
	}
	cf->n_errors = sub.n_errors;
}

/* load_file with a cache: a file whose identity did not change is not read again. */
static void load_file_cached(struct loader *l, const char *path)
{
	const char *display = strcmp(path, "-") == 0 ? "<stdin>" : path;
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	struct cached_file *cf = NULL;
	struct stat st;
	const char *file;
	int err = 0;

	if (!in || fstat(fileno(in), &st) != 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	if (err) {
		file = intern_file(l, display);
		io_error(l, file ? file : path, err);
	} else if (!S_ISREG(st.st_mode) || !seen_before(l, &st)) {
		cf = cache_lookup(l->cache, path, &st);
		if (!cf) {
			cf = cache_fresh(l->cache, path, display, &st);
			if (cf)
				parse_into(l, cf, in);
		}
		file = cf ? cf->objs.files[0] : NULL;
		if (!cf || cache_use(l->cache, cf) || !array_push(&l->cfg->files, &l->cfg->n_files, sizeof(char *)))
			io_error(l, file ? file : path, ENOMEM);
		else
			l->cfg->files[l->cfg->n_files - 1] = (char *)file;
	}
	if (in && in != stdin)
		fclose(in);
	else if (in)
		clearerr(stdin);
}

static void load_file(struct loader *l, const char *path)
{
	const char *file;
	FILE *in;
	struct stat st;

	if (l->cache) {
		load_file_cached(l, path);
		return;
	}
	file = intern_file(l, strcmp(path, "-") == 0 ? "<stdin>" : path);
	if (!file) {
		io_error(l, path, ENOMEM);
		return;
	}
	in = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	if (!in) {
		io_error(l, file, errno);
		return;
	}
	if (fstat(fileno(in), &st) != 0) {
		io_error(l, file, errno);
	} else if (S_ISDIR(st.st_mode)) {
		io_error(l, file, EISDIR);
	} else if (!S_ISREG(st.st_mode) || !seen_before(l, &st)) {
		l->file = file;
		ytree_read_stream(in, file, l->diags, &l->n_errors, on_document, l);
		if (ferror(in))
			io_error(l, file, EIO);
	}
	if (in != stdin)
		fclose(in);
	else
		clearerr(stdin);
}

static bool is_config_name(const char *name)
{
	size_t len = strlen(name);

	/* Hidden files are skipped: editors' and ConfigMap volumes' internals (..data) live there. */
	if (name[0] == '.')
		return false;
	return (len > 5 && strcmp(name + len - 5, ".yaml") == 0) || (len > 4 && strcmp(name + len - 4, ".yml") == 0);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_dir(struct loader *l, const char *path)
{
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *dir = opendir(path);

	if (!dir) {
		const char *file = intern_file(l, path);

		io_error(l, file ? file : path, errno);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		char **slot;

		if (!is_config_name(de->d_name))
			continue;
		slot = array_push(&names, &n, sizeof(*names));
		if (!slot || !(*slot = strdup(de->d_name))) {
			if (slot)
				n--;
			io_error(l, path, ENOMEM);
			break;
		}
	}
	closedir(dir);
	/* strcmp, not the locale's collation: the same order on every machine. */
	if (n) /* an empty directory has no array: qsort wants one all the same */
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *full = NULL;
		struct stat st;

		if (asprintf(&full, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]) < 0) {
			io_error(l, path, ENOMEM);
			break;
		}
		/* Symlinks are followed (ConfigMap volumes are made of them); only regular files are read. */
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
			load_file(l, full);
		free(full);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void load_path(struct loader *l, const char *path)
{
	struct stat st;

	if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		load_dir(l, path);
	else
		load_file(l, path);
}

static int load_all(struct loader *l, const char *const *paths, size_t n_paths)
{
	for (size_t i = 0; i < n_paths; i++) {
		if (!paths[i] || !paths[i][0]) {
			struct xm_loc loc = { .file = "<config>" };

			diags_add(l->diags, &loc, "empty path");
			l->n_errors++;
			continue;
		}
		load_path(l, paths[i]);
	}
	if (l->cache && cache_merge(l->cache, l->cfg, l->diags, &l->n_errors))
		io_error(l, "<config>", ENOMEM);
	config_validate(l->cfg, l->diags, &l->n_errors);
	diags_sort(l->diags, l->cfg->files, l->cfg->n_files);
	free(l->seen);
	if (l->io_err)
		return l->io_err;
	return l->n_errors ? -EINVAL : 0;
}

int config_load(const char *const *paths, size_t n_paths, struct xm_config *cfg, struct xm_diags *diags)
{
	struct loader l = { .cfg = cfg, .diags = diags };

	memset(cfg, 0, sizeof(*cfg));
	return load_all(&l, paths, n_paths);
}

/*
 * After a refused load: when every error is in an object from the API, those objects are marked excluded
 * (each is rejected alone) and true is returned for another round; false when a file has errors too (the
 * config is refused as a whole, as files always are).
 */
static bool exclude_api_errors(struct xm_config_cache *c, const struct xm_diags *diags)
{
	struct api_entry *hit[64];
	size_t n_hit = 0;

	for (size_t i = 0; i < diags->n; i++) {
		const struct xm_diag *d = &diags->items[i];
		struct api_entry **e;

		if (d->warning)
			continue;
		if (!d->loc.file || !c->n_api)
			return false;
		e = bsearch(&(struct api_entry *){ &(struct api_entry){ .key = (char *)d->loc.file } }, c->api,
			    c->n_api, sizeof(*c->api), cache_api_key_cmp);
		if (!e || (*e)->excluded)
			return false;
		if (n_hit < sizeof(hit) / sizeof(hit[0]))
			hit[n_hit++] = *e;
		if (!(*e)->why[0])
			snprintf((*e)->why, sizeof((*e)->why), "%s", d->msg);
	}
	for (size_t i = 0; i < n_hit; i++) {
		if (!hit[i]->excluded)
			c->n_excluded++;
		hit[i]->excluded = true;
	}
	return n_hit > 0;
}

int config_load_cached(struct xm_config_cache *cache, const char *const *paths, size_t n_paths, struct xm_config *cfg,
		       struct xm_diags *diags)
{
	cache->n_excluded = 0;
	for (size_t i = 0; i < cache->n_api; i++) {
		cache->api[i]->excluded = false;
		cache->api[i]->why[0] = '\0';
	}
	/* Each round leaves out the API objects the previous one found errors in (a few rounds: one may hide
	 * another, e.g. a duplicate of an excluded object). */
	for (int round = 0;; round++) {
		struct loader l = { .cfg = cfg, .diags = diags, .cache = cache };
		int err;

		memset(cfg, 0, sizeof(*cfg));
		cfg->borrowed = true;
		err = load_all(&l, paths, n_paths);
		if (err != -EINVAL || round == 4 || !exclude_api_errors(cache, diags))
			return err;
		config_free(cfg);
		diags_free(diags);
		memset(diags, 0, sizeof(*diags));
	}
}

int config_parse_object(const struct ynode *obj, const char *kind, const char *api_version, const char *name,
			struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	struct loader l = { .cfg = cfg, .diags = diags };

	memset(cfg, 0, sizeof(*cfg));
	l.file = intern_file(&l, name);
	if (!l.file)
		return -ENOMEM;
	/* At the List depth limit: an API object named "...List" is never taken for a list of more. */
	load_object(&l, obj, "object", kind, api_version, LIST_MAX_DEPTH);
	*n_errors = l.n_errors;
	return 0;
}
