// SPDX-License-Identifier: Apache-2.0
/* `xmesh routes [--json] [--admin SOCKET]`: the running agent's compiled L7 route table (istioctl proxy-config routes).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "core/strbuf.h"

int cmd_routes(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "admin", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *admin = XM_DEFAULT_ADMIN_SOCK;
	struct strbuf out = { 0 };
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
			printf("usage: xmesh routes [--json] [--admin SOCKET]\n");
			return 0;
		default:
			fprintf(stderr, "usage: xmesh routes [--json] [--admin SOCKET]\n");
			return 2;
		}
	}
	err = admin_request(admin, json ? "routes json" : "routes", &out);
	if (err) {
		fprintf(stderr, "xmesh routes: agent not reachable at %s: %s\n", admin, strerror(-err));
		sb_free(&out);
		return 1;
	}
	if (out.buf)
		fputs(out.buf, stdout);
	sb_free(&out);
	return 0;
}
