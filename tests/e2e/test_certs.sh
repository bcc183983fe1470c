#!/usr/bin/env bash
# Workload identities: with --cert-ttl 10s and two pods on this node (and one on another node), `xmesh certs
# --json` lists exactly the two local identities, renews both after half-life (new serials), exports their
# expiry as xmesh_cert_expiry_timestamp_seconds; the generated root's key file is 0600 and the same root is
# used again after a restart (here with --trust-domain example.org); a pod that leaves loses its certificate;
# a plug-in CA made by the openssl CLI signs leaves that `openssl verify` accepts; no key is ever printed.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
for c in curl python3 openssl; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_node_create
t="$XMT_TMP"
key="$t/agent-state/ca/ca-key.pem"
reviews="spiffe://cluster.local/ns/shop/sa/reviews"
default="spiffe://cluster.local/ns/default/sa/default"
elsewhere="spiffe://cluster.local/ns/shop/sa/elsewhere"

# pod NAME NS NODE IP [SERVICE_ACCOUNT]
pod() {
	cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $2}
spec:
  nodeName: $3
${5:+  serviceAccountName: $5}
status: {phase: Running, podIP: $4}
EOF
}

{
	xmt_yaml_node
	pod reviews-1 shop "$XMT_NODE_NAME" "$XMT_SUBNET.11" reviews
	pod plain default "$XMT_NODE_NAME" "$XMT_SUBNET.12"
	pod remote shop node2 10.200.99.11 elsewhere
} | xmt_config_write pods.yaml

certs_json() { xmt_xmesh certs --json --admin "$XMT_ADMIN" >"$t/certs.json" || xmt_fail "xmesh certs failed"; }
# py EXPR: evaluated with c = the certs JSON and ids = {identity: entry}
py() {
	python3 -c "import json,sys; c=json.load(open('$t/certs.json')); ids={i['identity']: i for i in c['identities']}; print($1)"
}

XMT_SUBTEST="mint"
xmt_agent_start --cert-ttl 10s
certs_json
[ "$(py 'sorted(ids)')" = "['$default', '$reviews']" ] ||
	xmt_fail "identities: $(py 'sorted(ids)') (want the two pods on $XMT_NODE_NAME only)"
[ "$(py "ids['$reviews']['pods']")" = "['shop/reviews-1']" ] || xmt_fail "pods of $reviews: $(py "ids['$reviews']['pods']")"
life=$(py "ids['$reviews']['not_after_unix'] - ids['$reviews']['not_before_unix']")
[ "$life" -ge 10 ] && [ "$life" -le 12 ] || xmt_fail "lifetime ${life}s for --cert-ttl 10s"
[ "$(py "len(c['roots'])")" = 1 ] || xmt_fail "roots: $(py "c['roots']")"
fp=$(py "c['roots'][0]['sha256']")
[ "${#fp}" = 95 ] || xmt_fail "root fingerprint '$fp' is no SHA-256"
s_reviews=$(py "ids['$reviews']['serial']")
s_default=$(py "ids['$default']['serial']")
xmt_xmesh certs --admin "$XMT_ADMIN" >"$t/certs.txt"
grep -qF "$reviews" "$t/certs.txt" || xmt_fail "text output lacks $reviews: $(cat "$t/certs.txt")"

XMT_SUBTEST="root key"
[ "$(stat -c %a "$key")" = 600 ] || xmt_fail "$key has mode $(stat -c %a "$key")"
[ "$(stat -c %a "$(dirname "$key")")" = 700 ] || xmt_fail "$(dirname "$key") has mode $(stat -c %a "$(dirname "$key")")"

XMT_SUBTEST="metrics"
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
for id in "$reviews" "$default"; do
	grep -q "^xmesh_cert_expiry_timestamp_seconds{identity=\"$id\"} " "$t/metrics" ||
		xmt_fail "no expiry series for $id: $(grep xmesh_cert "$t/metrics" | head -n 5)"
done
grep -q "$elsewhere" "$t/metrics" && xmt_fail "the other node's pod has a certificate here"
grep -q '^xmesh_cert_verify_failures_total{reason="unknown_ca"} 0' "$t/metrics" ||
	xmt_fail "no verify failure counter: $(grep verify "$t/metrics" | head -n 3)"

XMT_SUBTEST="renewal after half-life"
deadline=$(($(date +%s) + 12))
while :; do
	certs_json
	if [ "$(py "ids['$reviews']['serial']")" != "$s_reviews" ] && [ "$(py "ids['$default']['serial']")" != "$s_default" ]; then
		break
	fi
	[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "not renewed within 12 s: $(cat "$t/certs.json")"
	sleep 0.5
done
xmt_log "renewed: $s_reviews -> $(py "ids['$reviews']['serial']")"
grep -q 'renewal: .* renewed' "$XMT_AGENT_LOG" || xmt_fail "the agent did not log the renewal"

XMT_SUBTEST="a pod leaves"
{
	xmt_yaml_node
	pod reviews-1 shop "$XMT_NODE_NAME" "$XMT_SUBNET.11" reviews
} | xmt_config_write pods.yaml
deadline=$(($(date +%s) + 5))
while certs_json && [ "$(py 'len(ids)')" != 1 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "identities after the pod left: $(py 'sorted(ids)')"
	sleep 0.2
done
[ "$(py 'sorted(ids)')" = "['$reviews']" ] || xmt_fail "identities: $(py 'sorted(ids)')"

XMT_SUBTEST="status"
xmt_xmesh status --admin "$XMT_ADMIN" >"$t/status.txt"
grep -q '^identity: 1 workload certificate' "$t/status.txt" || xmt_fail "status: $(grep -i ident "$t/status.txt")"

XMT_SUBTEST="restart reuses the root, in another trust domain"
xmt_agent_stop || xmt_fail "agent exited non-zero"
xmt_agent_start --cert-ttl 10s --trust-domain example.org
certs_json
[ "$(py "c['roots'][0]['sha256']")" = "$fp" ] || xmt_fail "another root after the restart: $(py "c['roots']")"
[ "$(py 'sorted(ids)')" = "['spiffe://example.org/ns/shop/sa/reviews']" ] ||
	xmt_fail "identities in example.org: $(py 'sorted(ids)')"
grep -q "identity: CA from generated root in $t/agent-state/ca" "$XMT_AGENT_LOG" ||
	xmt_fail "the second start did not load the generated root: $(grep identity "$XMT_AGENT_LOG" | head -n 3)"
[ "$(stat -c %a "$key")" = 600 ] || xmt_fail "$key has mode $(stat -c %a "$key") after the restart"

XMT_SUBTEST="plug-in CA (--ca-dir), checked by the openssl CLI"
pki="$t/pki"
mkdir -p "$pki"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1 failed: $(tail -n 3 "$t/openssl.log")"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/root-key.pem" \
	-out "$pki/root-cert.pem" -subj "/O=test/CN=test root" -days 30 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca-key.pem" -out "$pki/ca.csr" \
	-subj "/O=test/CN=test intermediate"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n' >"$pki/ext"
ossl x509 -req -in "$pki/ca.csr" -CA "$pki/root-cert.pem" -CAkey "$pki/root-key.pem" -CAcreateserial -days 10 \
	-extfile "$pki/ext" -out "$pki/ca-cert.pem"
cp "$pki/ca-cert.pem" "$pki/cert-chain.pem"
xmt_agent_stop || xmt_fail "agent exited non-zero"
xmt_agent_start --ca-dir "$pki"
certs_json
[ "$(py "c['ca']")" = "--ca-dir $pki" ] || xmt_fail "CA: $(py "c['ca']")"
want_fp=$(openssl x509 -in "$pki/root-cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
[ "$(py "c['roots'][0]['sha256']")" = "$want_fp" ] || xmt_fail "root $(py "c['roots'][0]['sha256']"), want $want_fp"
[ "$(py "ids['$reviews']['chain_length']")" = 2 ] || xmt_fail "chain: $(py "ids['$reviews']['chain_length']")"
py "ids['$reviews']['chain_pem']" >"$t/chain.pem"
openssl verify -CAfile "$pki/root-cert.pem" -untrusted "$t/chain.pem" -purpose sslclient "$t/chain.pem" \
	>"$t/verify.txt" 2>&1 || xmt_fail "openssl verify: $(cat "$t/verify.txt")"
openssl verify -CAfile "$pki/root-cert.pem" -untrusted "$t/chain.pem" -purpose sslserver "$t/chain.pem" \
	>"$t/verify.txt" 2>&1 || xmt_fail "openssl verify (server): $(cat "$t/verify.txt")"
openssl x509 -in "$t/chain.pem" -noout -text >"$t/leaf.txt"
grep -q "URI:$reviews\$" "$t/leaf.txt" || xmt_fail "leaf SAN: $(grep -A1 'Alternative' "$t/leaf.txt")"
grep -q 'ASN1 OID: prime256v1' "$t/leaf.txt" || xmt_fail "leaf key is not P-256"
grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' "$t/leaf.txt" || xmt_fail "leaf EKU"

XMT_SUBTEST="no key material"
if grep -l 'PRIVATE KEY' "$t"/agent-*.log "$t/certs.json" "$t/certs.txt" "$t/metrics" "$t/chain.pem" 2>/dev/null; then
	xmt_fail "key material in the output"
fi

xmt_pass "two local identities minted, renewed after half-life, exported; root 0600 and reused; plug-in CA"
