/* SPDX-License-Identifier: Apache-2.0 */
/* Entry points of the xmesh subcommands; each returns the process exit code. */
#ifndef XMESH_CLI_H
#define XMESH_CLI_H

int cmd_agent(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_routes(int argc, char **argv);
int cmd_certs(int argc, char **argv);
int cmd_maps(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);

#endif
