# shellcheck shell=bash
# Helpers for the outlier-detection tests (sourced after lib.sh).

# xmt_outlier_config C5XX BASE MAXPCT BACKEND...: Service default/reviews over BACKEND pods, ROUND_ROBIN,
# with outlierDetection {consecutive5xxErrors C5XX, baseEjectionTime BASE, maxEjectionPercent MAXPCT}.
xmt_outlier_config() {
	local c5xx=$1 base=$2 maxpct=$3 p eps=()
	shift 3
	for p in "$@"; do eps+=("$(xmt_pod_ip "$p")"); done
	{
		xmt_yaml_service --name reviews --vip "$XMT_VIP"
		xmt_yaml_slice --service reviews "${eps[@]}"
		cat <<EOF
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    outlierDetection:
      consecutive5xxErrors: $c5xx
      interval: 1s
      baseEjectionTime: $base
      maxEjectionPercent: $maxpct
EOF
	} | xmt_config_write reviews.yaml
}

# xmt_ejected_count: endpoints the agent reports as ejected now.
xmt_ejected_count() {
	xmt_xmesh status --json --admin "$XMT_ADMIN" | grep -o '"ejected":true' | wc -l
}
