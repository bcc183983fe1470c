#!/usr/bin/env bash
# The inspection commands of the contract against a running agent: `xmesh status [--json]` over the admin
# socket names the service and its endpoints, `xmesh routes [--json]` the HTTP service and its routes,
# `xmesh maps [NAME] [--json] --bpffs DIR` decodes the pinned maps (also with the agent stopped),
# `xmesh validate` accepts a good config and warns about what is served at L4 for now (HTTP/2 ports, tcp: and
# tls: routes) without failing, `xmesh version` answers.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std b1 b2 b3
{
	xmt_yaml_service --name web --vip 10.96.0.77 --port-name http
	cat <<EOF
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    directResponse: {status: 204}
  - route: [{destination: {host: web}}]
EOF
} | xmt_config_write web.yaml
xmt_agent_start
out="$XMT_TMP/out"

run() { # WHAT CMD...: runs an xmesh command, fails the test on a non-zero exit
	local what=$1 rc=0
	shift
	xmt_xmesh "$@" >"$out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || xmt_fail "$what: xmesh $* exited $rc: $(head -n 5 "$out")"
}
has() { # WHAT STRING...: the last command's output contains every STRING
	local what=$1 s
	shift
	for s in "$@"; do
		grep -qF -- "$s" "$out" || xmt_fail "$what: output lacks '$s': $(head -c 600 "$out")"
	done
}

XMT_SUBTEST=status
run status status --admin "$XMT_ADMIN"
has status reviews "$XMT_VIP" "$(xmt_pod_ip b1)" "$(xmt_pod_ip b3)"
run "status --json" status --json --admin "$XMT_ADMIN"
jq -e . "$out" >/dev/null 2>&1 || xmt_fail "status --json is not JSON: $(head -c 300 "$out")"
has "status --json" reviews "$XMT_VIP"

XMT_SUBTEST=routes
run routes routes --admin "$XMT_ADMIN"
has routes "10.96.0.77:80/TCP default/web" "route api (virtualservice default/web" 'match: uri prefix "/api"' \
	"direct response 204" "-> outbound|80||web.default.svc.cluster.local weight 100"
grep -qF "$XMT_VIP:" "$out" && xmt_fail "routes: reviews (port tcp) is not HTTP: $(head -c 600 "$out")"
run "routes --json" routes --json --admin "$XMT_ADMIN"
jq -e '.services[0].vhost.routes[0].name == "api"' "$out" >/dev/null 2>&1 ||
	xmt_fail "routes --json: $(head -c 300 "$out")"

XMT_SUBTEST=maps
run maps maps --bpffs "$XMT_PIN"
has maps "$XMT_VIP" "$(xmt_pod_ip b2)"
run "maps xm_services --json" maps xm_services --json --bpffs "$XMT_PIN"
jq -e . "$out" >/dev/null 2>&1 || xmt_fail "maps --json is not JSON: $(head -c 300 "$out")"
has "maps xm_services --json" "$XMT_VIP"

XMT_SUBTEST=validate
run validate validate "$XMT_CONF/reviews.yaml"
# What xmesh serves at L4 for now is said, as a warning that does not fail validation: HTTP/2 ports (grpc,
# h2c) and a VirtualService's tcp: and tls: routes.
{
	xmt_yaml_service --name api --vip 10.96.0.78 --port-name grpc-api
	cat <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: h2, namespace: default}
spec:
  clusterIP: 10.96.0.79
  ports: [{name: web, port: 80, targetPort: 8080, appProtocol: kubernetes.io/h2c}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [web]
  tcp: [{route: [{destination: {host: web}}]}]
  tls: [{match: [{sniHosts: [web]}], route: [{destination: {host: web}}]}]
EOF
} >"$XMT_TMP/l4-for-now.yaml"
run "validate (warnings)" validate "$XMT_TMP/l4-for-now.yaml"
has "validate (warnings)" "l4-for-now.yaml:" "warning: service default/api: port $XMT_PORT: HTTP/2 is not supported yet" \
	"warning: service default/h2: port 80: HTTP/2 is not supported yet" "spec.tcp routes are not supported yet" \
	"spec.tls routes are not supported yet"
run version version

XMT_SUBTEST="maps without agent"
xmt_agent_stop || xmt_fail "the agent exited non-zero on SIGTERM"
run "maps (agent stopped)" maps xm_backends --bpffs "$XMT_PIN"
has "maps xm_backends (agent stopped)" "$(xmt_pod_ip b1)" "$(xmt_pod_ip b3)"
XMT_SUBTEST=""
xmt_pass "status, routes, maps, validate, version"
