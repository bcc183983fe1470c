# shellcheck shell=bash
# Helpers for the tests that drive the agent from a Kubernetes API server (sourced after lib.sh): the test
# API server (tests/tools/kube-apiserver.py) in the node namespace with TLS from a test CA and a bearer token,
# a kubeconfig for it, and JSON objects put/deleted through its control endpoint.

KAPI_PORT=16443
KAPI_TOKEN=test-token-1

# kapi_start [SERVER ARGS...]: CA, server certificate for 127.0.0.1, a client certificate (CN xmesh-agent) for
# --client-ca, the server, and $XMT_TMP/kubeconfig.
kapi_start() {
	local d="$XMT_TMP/kapi"
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=xmesh-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$d/ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=xmesh-agent \
		-keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
	openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile "$d/client.ext" -out "$d/client.crt" 2>/dev/null
	xmt_bg kapi node plain python3 "$(dirname "${BASH_SOURCE[0]}")/../tools/kube-apiserver.py" \
		--port "$KAPI_PORT" --cert "$d/server.crt" --key "$d/server.key" --token "$KAPI_TOKEN" "$@"
	xmt_wait_for "$(xmt_bg_log kapi)" ' ready$' 10 "${XMT_BG[kapi]}" ||
		xmt_fail "the test API server did not start: $(tail -n 5 "$(xmt_bg_log kapi)")"
	cat >"$XMT_TMP/kubeconfig" <<KC
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$KAPI_PORT
    certificate-authority: kapi/ca.crt
contexts:
- name: test
  context: {cluster: test, user: agent}
users:
- name: agent
  user: {token: $KAPI_TOKEN}
KC
}

# kapi_ctl PATH [curl args...]: a control request; prints the answer.
kapi_ctl() {
	local path=$1
	shift
	xmt_nsrun node curl -sS --fail --cacert "$XMT_TMP/kapi/ca.crt" -X POST "$@" \
		"https://127.0.0.1:$KAPI_PORT/_ctl/$path"
}

# kapi_put RESOURCE < JSON
kapi_put() { kapi_ctl "put?resource=$1" -H 'Content-Type: application/json' --data-binary @- >/dev/null; }
kapi_delete() { kapi_ctl "delete?resource=$1&namespace=$2&name=$3" >/dev/null; }
kapi_stats() {
	xmt_nsrun node curl -sS --fail --cacert "$XMT_TMP/kapi/ca.crt" "https://127.0.0.1:$KAPI_PORT/_ctl/stats"
}
# kapi_stat KEY: one counter of the stats ("list services", "watch endpointslices", "401 services"...).
kapi_stat() { kapi_stats | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"; }

# kapi_service NAME VIP [PORT [TARGET]]: a Service's JSON.
kapi_service() {
	printf '{"metadata":{"name":"%s","namespace":"default"},"spec":{"type":"ClusterIP","clusterIP":"%s",' "$1" "$2"
	printf '"clusterIPs":["%s"],"ports":[{"name":"tcp","port":%s,"protocol":"TCP","targetPort":%s}]}}\n' \
		"$2" "${3:-$XMT_PORT}" "${4:-$XMT_TARGET}"
}

# kapi_slice SERVICE POD...: the IPv4 EndpointSlice SERVICE-ipv4 of the pods (ready, on this node).
kapi_slice() {
	local svc=$1 sep="" p
	shift
	printf '{"metadata":{"name":"%s-ipv4","namespace":"default","labels":{"kubernetes.io/service-name":"%s"}},' \
		"$svc" "$svc"
	printf '"addressType":"IPv4","ports":[{"name":"tcp","port":%s,"protocol":"TCP"}],"endpoints":[' "$XMT_TARGET"
	for p in "$@"; do
		printf '%s{"addresses":["%s"],"conditions":{"ready":true},"nodeName":"%s"}' "$sep" "$(xmt_pod_ip "$p")" \
			"$XMT_NODE_NAME"
		sep=,
	done
	printf ']}\n'
}

# kapi_stat_above KEY N: the counter KEY is above N now.
kapi_stat_above() { [ "$(kapi_stat "$1")" -gt "$2" ]; }

# kapi_status_field KIND FIELD: from `xmesh status json`.
kapi_status_field() {
	xmt_xmesh status --admin "$XMT_ADMIN" --json | python3 -c '
import json, sys
for k in json.load(sys.stdin)["kubernetes"]["kinds"]:
    if k["kind"] == sys.argv[1]:
        print(k[sys.argv[2]])' "$1" "$2"
}

# kapi_wait_until SECONDS CMD...: polls CMD every 50 ms; returns 1 when it never succeeded.
kapi_wait_until() {
	local deadline=$(($(date +%s%3N) + $1 * 1000))
	shift
	while [ "$(date +%s%3N)" -lt "$deadline" ]; do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
