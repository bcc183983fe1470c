// SPDX-License-Identifier: Apache-2.0
/*
 * The CLI commands that only ask the running agent (`xmesh status`, `xmesh routes`, `xmesh certs`): `CMD [--json]
 * [--admin SOCKET]` sends "CMD" or "CMD json" over the admin socket and prints the answer.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "core/strbuf.h"

/* hint: what to say after "agent not reachable" (or ""). */
static int admin_query(int argc, char **argv, const char *cmd, const char *hint)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "admin", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *admin = XM_DEFAULT_ADMIN_SOCK;
	struct strbuf out = { 0 };
	char request[32];
	int c, err, json = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'a':
			admin = optarg;
			break;
		case 'h':
			printf("usage: xmesh %s [--json] [--admin SOCKET]\n", cmd);
			return 0;
		default:
			fprintf(stderr, "usage: xmesh %s [--json] [--admin SOCKET]\n", cmd);
			return 2;
		}
	}
	snprintf(request, sizeof(request), "%s%s", cmd, json ? " json" : "");
	err = admin_request(admin, request, &out);
	if (err) {
		fprintf(stderr, "xmesh %s: agent not reachable at %s: %s%s\n", cmd, admin, strerror(-err), hint);
		sb_free(&out);
		return 1;
	}
	if (out.buf)
		fputs(out.buf, stdout);
	sb_free(&out);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	return admin_query(argc, argv, "status", " (xmesh maps reads the pinned maps without it)");
}

/* The compiled L7 route table, as istioctl proxy-config routes shows Envoy's. */
int cmd_routes(int argc, char **argv)
{
	return admin_query(argc, argv, "routes", "");
}

/* This node's workload identities, their certificates and the trust bundle (no key, ever). */
int cmd_certs(int argc, char **argv)
{
	return admin_query(argc, argv, "certs", "");
}
