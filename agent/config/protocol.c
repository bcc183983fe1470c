// SPDX-License-Identifier: Apache-2.0
/* Istio's protocol selection of a Service port: appProtocol first, else the port name's prefix. */
#include <string.h>
#include <strings.h>

#include "config/model.h"

struct proto_name {
	const char *name;
	enum xm_port_protocol proto;
};

/* Istio's protocol names (pkg/config/protocol), case-insensitive. */
static const struct proto_name names[] = {
	{ "http", XM_PORT_PROTO_HTTP },
	{ "http2", XM_PORT_PROTO_HTTP2 },
	{ "grpc", XM_PORT_PROTO_HTTP2 },
	{ "grpc-web", XM_PORT_PROTO_HTTP2 },
	{ "h2c", XM_PORT_PROTO_HTTP2 },
	{ "kubernetes.io/h2c", XM_PORT_PROTO_HTTP2 },
	{ "tcp", XM_PORT_PROTO_OTHER },
	{ "https", XM_PORT_PROTO_OTHER },
	{ "tls", XM_PORT_PROTO_OTHER },
	{ "mongo", XM_PORT_PROTO_OTHER },
	{ "mysql", XM_PORT_PROTO_OTHER },
	{ "redis", XM_PORT_PROTO_OTHER },
	{ "udp", XM_PORT_PROTO_OTHER },
	{ "kubernetes.io/ws", XM_PORT_PROTO_HTTP },
	{ "kubernetes.io/wss", XM_PORT_PROTO_OTHER },
};

static enum xm_port_protocol lookup(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && !strncasecmp(names[i].name, s, len))
			return names[i].proto;
	return XM_PORT_PROTO_UNKNOWN;
}

enum xm_port_protocol config_port_protocol(const struct xm_service_port *sp)
{
	const char *dash;

	if (sp->app_protocol[0]) {
		enum xm_port_protocol p = lookup(sp->app_protocol, strlen(sp->app_protocol));

		/* An appProtocol Istio does not know (a vendor's "example.com/x") says: not HTTP. */
		return p == XM_PORT_PROTO_UNKNOWN ? XM_PORT_PROTO_OTHER : p;
	}
	/* "http", "http-web", "grpc-api": the part before the first '-' (Istio's <protocol>[-<suffix>]). */
	dash = sp->name;
	while (*dash && *dash != '-')
		dash++;
	if (!strncasecmp(sp->name, "grpc-web", 8) && (!sp->name[8] || sp->name[8] == '-'))
		return XM_PORT_PROTO_HTTP2;
	return lookup(sp->name, (size_t)(dash - sp->name));
}
