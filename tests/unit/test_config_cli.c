/* SPDX-License-Identifier: Apache-2.0 */
/* `xmesh validate`: exit codes and output format. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "cli/cli.h"
#include "test_config.h"

static int run(int argc, const char **argv)
{
	int r;

	fflush(stdout);
	r = cmd_validate(argc, (char **)argv);
	fflush(stdout);
	return r;
}

Test(config_cli, clean_config_exits_0_silently, .init = cr_redirect_stdout)
{
	const char *argv[] = { "validate", fixture("kubectl_bookinfo.yaml") };

	cr_expect_eq(run(2, argv), 0);
	cr_expect_stdout_eq_str("");
}

Test(config_cli, warnings_exit_0_and_say_warning, .init = cr_redirect_stdout)
{
	const char *argv[] = { "validate", fixture("services.yaml"), fixture("kubectl_bookinfo.yaml") };
	char want[1024];

	snprintf(want, sizeof(want),
		 "%s:12:5: warning: service default/reviews: port 9090: HTTP/2 is not supported yet: served at L4\n",
		 argv[1]);
	cr_expect_eq(run(3, argv), 0);
	cr_expect_stdout_eq_str(want);
}

Test(config_cli, errors_exit_1_with_file_line_col, .init = cr_redirect_stdout)
{
	const char *argv[] = { "validate", fixture("errors/port_range.yaml") };
	char want[1024];

	snprintf(want, sizeof(want),
		 "%s:11:17: service default/reviews: port \"http\": targetPort 70000 out of range 1-65535\n"
		 "%s:13:11: service default/reviews: port \"admin\": port 0 out of range 1-65535\n",
		 argv[1], argv[1]);
	cr_expect_eq(run(2, argv), 1);
	cr_expect_stdout_eq_str(want);
}

Test(config_cli, unreadable_path_exits_1, .init = cr_redirect_stdout)
{
	const char *argv[] = { "validate", "--", "/nonexistent-xmesh.yaml" };

	cr_expect_eq(run(3, argv), 1);
	cr_expect_stdout_eq_str("/nonexistent-xmesh.yaml: No such file or directory\n");
}

Test(config_cli, usage, .init = cr_redirect_stderr)
{
	const char *none[] = { "validate" };
	const char *bad[] = { "validate", "--frobnicate", fixture("services.yaml") };
	const char *help[] = { "validate", "--help" };

	cr_expect_eq(run(1, none), 2);
	cr_expect_eq(run(3, bad), 2);
	cr_redirect_stdout();
	cr_expect_eq(run(2, help), 0);
	fflush(stdout);
	cr_expect_stdout_neq_str("");
}

Test(config_cli, two_services_on_one_vip_port_exit_1, .init = cr_redirect_stdout)
{
	const char *argv[] = { "validate", fixture("errors/vip_conflict.yaml") };
	char want[256];

	snprintf(want, sizeof(want), "%s:8:5: service default/reviews: 10.96.0.10:80/TCP is also claimed", argv[1]);
	cr_expect_eq(run(2, argv), 1);
	fflush(stdout);
	{
		FILE *f = cr_get_redirected_stdout();
		char line[512] = "";

		cr_assert(fgets(line, sizeof(line), f));
		cr_expect(!strncmp(line, want, strlen(want)), "first line: %s", line);
	}
}
