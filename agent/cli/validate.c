/* SPDX-License-Identifier: Apache-2.0 */
/* `xmesh validate PATH...`: read the config as the agent would; print every error as file:line:col: message. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/model.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: xmesh validate PATH...\n"
		     "\n"
		     "Read Kubernetes and Istio objects from YAML files, directories of *.yaml / *.yml files\n"
		     "(not recursive) or '-' (stdin), and check them as `xmesh agent --config` would.\n"
		     "Prints each error as FILE:LINE:COL: MESSAGE on stdout.\n"
		     "\n"
		     "Exit status: 0 when the config is valid, 1 when it has errors, 2 on a usage error.\n");
}

int cmd_validate(int argc, char **argv)
{
	struct xm_config cfg = { 0 };
	struct xm_diags diags = { 0 };
	const char **paths;
	size_t n_paths = 0;
	bool only_paths = false;
	int err;

	if (argc < 1)
		return 2;
	paths = calloc((size_t)argc, sizeof(*paths));
	if (!paths) {
		fprintf(stderr, "xmesh validate: out of memory\n");
		return 2;
	}
	/* Options may come anywhere before "--"; "-" alone is stdin, a path. */
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!only_paths && strcmp(arg, "--") == 0) {
			only_paths = true;
		} else if (!only_paths && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
			usage(stdout);
			free(paths);
			return 0;
		} else if (!only_paths && arg[0] == '-' && arg[1]) {
			fprintf(stderr, "xmesh validate: unknown option '%s'\n", arg);
			usage(stderr);
			free(paths);
			return 2;
		} else {
			paths[n_paths++] = arg;
		}
	}
	if (n_paths == 0) {
		fprintf(stderr, "xmesh validate: no PATH given\n");
		usage(stderr);
		free(paths);
		return 2;
	}
	err = config_load(paths, n_paths, &cfg, &diags);
	diags_print(&diags, stdout);
	diags_free(&diags);
	config_free(&cfg);
	free(paths);
	return err ? 1 : 0;
}
