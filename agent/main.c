// SPDX-License-Identifier: Apache-2.0
/* xmesh: one binary for the agent and its CLI. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: xmesh COMMAND [ARGS]\n\n"
		   "commands:\n"
		   "  agent     run the node agent (xmesh agent --help)\n"
		   "  validate  check config files: xmesh validate PATH...\n"
		   "  status    what the running agent serves: xmesh status [--json]\n"
		   "  routes    the compiled L7 route table per HTTP service: xmesh routes [--json]\n"
		   "  certs     this node's workload identities and trust bundle: xmesh certs [--json]\n"
		   "  maps      decoded contents of the pinned maps: xmesh maps [NAME] [--json] [--bpffs DIR]\n"
		   "  cleanup   detach and unpin everything: xmesh cleanup --bpffs DIR --cgroup DIR\n"
		   "  version   print the version\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || !strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("xmesh %s\n", XMESH_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "agent"))
		return cmd_agent(argc - 1, argv + 1);
	if (!strcmp(cmd, "validate"))
		return cmd_validate(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "routes"))
		return cmd_routes(argc - 1, argv + 1);
	if (!strcmp(cmd, "certs"))
		return cmd_certs(argc - 1, argv + 1);
	if (!strcmp(cmd, "maps"))
		return cmd_maps(argc - 1, argv + 1);
	if (!strcmp(cmd, "cleanup"))
		return cmd_cleanup(argc - 1, argv + 1);
	fprintf(stderr, "xmesh: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
