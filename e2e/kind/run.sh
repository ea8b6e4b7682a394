#!/usr/bin/env bash
# The dabba e2e suite in a kind cluster, with the operator installed from the Helm chart.
#
#   e2e/kind/run.sh [--mesh istio|linkerd|none] [--name NAME] [--keep] [--skip-build]
#                   [--host-address IP] [-- PYTEST_ARGS...]
#
# On a machine with Docker, kind, kubectl, helm and python3 (plus `linkerd` for --mesh linkerd):
#   1. creates the kind cluster (e2e/kind/kind-config.yaml; KIND_NODE_IMAGE overrides the node),
#   2. installs the Gateway API CRDs and the mesh: istio (istio/base + istiod, the default),
#      linkerd (its CLI), or none (only Istio's CRDs, so the istio router's objects validate),
#   3. installs Prometheus (kube-prometheus-stack: the Prometheus Operator, so the chart's
#      ServiceMonitor and PrometheusRule are live, and Grafana with its dashboard sidecar),
#   4. builds the image from the Dockerfile and loads it into the nodes,
#   5. installs charts/dabba with its ServiceMonitor, PrometheusRule and dashboard,
#   6. starts the traffic simulator (e2e/simulator, which plays the mesh data plane exactly as it
#      does on the local control plane) on this host, scraped by the in-cluster Prometheus, and
#   7. runs `pytest e2e` against the cluster.
#
# The suite finds the cluster through these variables (the local-control-plane fixtures take
# the same roles from e2e/localcluster):
#   DABBA_E2E_KUBECONFIG             kubeconfig of the kind cluster (cluster-admin)
#   DABBA_E2E_PROMETHEUS_URL         the in-cluster Prometheus, port-forwarded to this host
#   DABBA_E2E_OPERATOR=chart         the operator runs from the chart, not as a local process:
#   DABBA_E2E_OPERATOR_NAMESPACE       its namespace, and
#   DABBA_E2E_OPERATOR_SELECTOR        the label selector of its pods (restart = delete them)
#   DABBA_E2E_TARGETS_DIR            scrape targets: file_sd JSON files, as in the local cluster;
#                                    127.0.0.1 in them is rewritten to DABBA_E2E_HOST_ADDRESS
#   DABBA_E2E_HOST_ADDRESS           where pods reach this host: exporters and webhook receivers
#                                    started by tests listen on 0.0.0.0 and advertise this address
#
# The cluster is deleted at the end unless --keep is given; everything started here is stopped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../localcluster/versions.env
source "$REPO/e2e/localcluster/versions.env"

MESH=istio
NAME=dabba-e2e
KEEP=0
BUILD=1
HOST_ADDRESS=""
PYTEST_ARGS=()
IMAGE=dabba:e2e
OPERATOR_NS=dabba-system
MONITORING_NS=monitoring
ISTIO_VERSION=${ISTIO_VERSION:-${ISTIO_API_VERSION#v}}
KPS_CHART_VERSION=${KPS_CHART_VERSION:-}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "run.sh: $*" >&2; exit 1; }
say() { printf '\n[kind-e2e] %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mesh) MESH=${2:?--mesh needs a value}; shift 2 ;;
    --name) NAME=${2:?--name needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --skip-build) BUILD=0; shift ;;
    --host-address) HOST_ADDRESS=${2:?--host-address needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$MESH" in istio|linkerd|none) ;; *) die "--mesh must be istio, linkerd or none" ;; esac

need=(docker kind kubectl helm)
[ "$MESH" = linkerd ] && need+=(linkerd)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null || die "$tool is required on PATH"
done
[ -x "$PYTHON" ] || die "no $PYTHON: run 'make venv' first (or set PYTHON)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dabba-kind.XXXXXX")
KUBECONFIG_FILE=$WORK/kubeconfig
TARGETS_DIR=$WORK/targets
mkdir -p "$TARGETS_DIR"
PIDS=()

# shellcheck disable=SC2317,SC2329  # invoked by the trap below
cleanup() {
  local rc=$?
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then
    say "kept cluster $NAME: export KUBECONFIG=$KUBECONFIG_FILE"
  else
    kind delete cluster --name "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }
hm() { helm --kubeconfig "$KUBECONFIG_FILE" "$@"; }

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {  # url seconds
  local deadline=$((SECONDS + $2))
  until "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || die "$1 did not answer within $2 s"
    sleep 1
  done
}

# -- 1. the cluster ---------------------------------------------------------------------------
say "creating kind cluster $NAME"
node_image=()
[ -n "${KIND_NODE_IMAGE:-}" ] && node_image=(--image "$KIND_NODE_IMAGE")
kind create cluster --name "$NAME" --config "$HERE/kind-config.yaml" \
  --kubeconfig "$KUBECONFIG_FILE" ${node_image[@]+"${node_image[@]}"} --wait 120s
if [ -z "$HOST_ADDRESS" ]; then
  # Pods reach the host on the kind network's gateway (Linux). Docker Desktop: pass
  # --host-address with an address of this machine that containers can reach.
  HOST_ADDRESS=$(docker network inspect kind \
    -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | tr ' ' '\n' \
    | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | head -n1)
  [ -n "$HOST_ADDRESS" ] || die "cannot find the kind network's IPv4 gateway; pass --host-address"
fi

# -- 2. Gateway API and the mesh ----------------------------------------------------------------
say "installing Gateway API $GATEWAY_API_VERSION CRDs"
kc apply --server-side -f \
  "https://github.com/kubernetes-sigs/gateway-api/releases/download/$GATEWAY_API_VERSION/standard-install.yaml"

case "$MESH" in
  istio|none)
    say "installing Istio $ISTIO_VERSION ($([ "$MESH" = none ] && echo 'CRDs only' || echo 'base + istiod'))"
    hm repo add istio https://istio-release.storage.googleapis.com/charts --force-update >/dev/null
    hm upgrade --install istio-base istio/base --version "$ISTIO_VERSION" \
      -n istio-system --create-namespace --wait
    if [ "$MESH" = istio ]; then
      hm upgrade --install istiod istio/istiod --version "$ISTIO_VERSION" \
        -n istio-system --wait --timeout 5m
    fi
    ;;
  linkerd)
    say "installing Linkerd ($(linkerd version --client --short)) and Istio's CRDs"
    linkerd --kubeconfig "$KUBECONFIG_FILE" install --crds | kc apply -f -
    linkerd --kubeconfig "$KUBECONFIG_FILE" install | kc apply -f -
    linkerd --kubeconfig "$KUBECONFIG_FILE" check --wait 5m
    # The suite also exercises the istio router: its CRDs must exist to validate the objects.
    hm repo add istio https://istio-release.storage.googleapis.com/charts --force-update >/dev/null
    hm upgrade --install istio-base istio/base --version "$ISTIO_VERSION" \
      -n istio-system --create-namespace --wait
    ;;
esac

# -- 3. Prometheus ------------------------------------------------------------------------------
say "installing kube-prometheus-stack"
SIM_PORT=$(free_port)
SD_PORT=$(free_port)
cat >"$WORK/kps-values.yaml" <<EOF
fullnameOverride: kps
alertmanager: {enabled: false}
nodeExporter: {enabled: false}
kubeStateMetrics: {enabled: false}
grafana:
  enabled: true
  sidecar: {dashboards: {enabled: true, label: grafana_dashboard, searchNamespace: ALL}}
prometheus:
  prometheusSpec:
    # The suite's analysis intervals are seconds long, as on the local control plane.
    scrapeInterval: 1s
    evaluationInterval: 1s
    # Pick up the chart's ServiceMonitor and PrometheusRule whatever their labels.
    serviceMonitorSelectorNilUsesHelmValues: false
    ruleSelectorNilUsesHelmValues: false
    additionalScrapeConfigs:
      # Exporters on this host (the traffic simulator, the tests' own), as files in
      # DABBA_E2E_TARGETS_DIR, served by the small HTTP service discovery started below.
      - job_name: dabba
        honor_labels: true
        scrape_interval: 1s
        scrape_timeout: 1s
        http_sd_configs:
          - url: http://$HOST_ADDRESS:$SD_PORT/targets.json
            refresh_interval: 1s
EOF
kps_version=()
[ -n "$KPS_CHART_VERSION" ] && kps_version=(--version "$KPS_CHART_VERSION")
hm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
hm upgrade --install kps prometheus-community/kube-prometheus-stack ${kps_version[@]+"${kps_version[@]}"} \
  -n "$MONITORING_NS" --create-namespace -f "$WORK/kps-values.yaml" --wait --timeout 10m
PROMETHEUS_IN_CLUSTER=http://kps-prometheus.$MONITORING_NS:9090

# -- 4. the image -------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  say "building $IMAGE"
  docker build -t "$IMAGE" "$REPO"
fi
kind load docker-image "$IMAGE" --name "$NAME"

# -- 5. the chart -------------------------------------------------------------------------------
say "installing charts/dabba"
hm upgrade --install dabba "$REPO/charts/dabba" -n "$OPERATOR_NS" --create-namespace \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --set prometheusUrl="$PROMETHEUS_IN_CLUSTER" \
  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true --set dashboard.enabled=true \
  --set logLevel=debug --wait --timeout 5m
kc -n "$OPERATOR_NS" rollout status deploy/dabba --timeout 120s

# -- 6. host-side helpers: service discovery, the traffic simulator, Prometheus locally ----------
say "starting service discovery, the traffic simulator and a port-forward to Prometheus"
"$PYTHON" - "$TARGETS_DIR" "$SD_PORT" "$HOST_ADDRESS" >"$WORK/sd.log" 2>&1 <<'EOF' &
import http.server, json, pathlib, sys

targets_dir, port, host = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

class SD(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        groups = []
        for f in sorted(targets_dir.glob("*.json")):
            try:
                groups += json.loads(f.read_text())
            except ValueError:
                continue  # a file being written; the next refresh reads it
        for g in groups:
            g["targets"] = [t.replace("127.0.0.1:", host + ":") for t in g.get("targets", [])]
        body = json.dumps(groups).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("0.0.0.0", port), SD).serve_forever()
EOF
PIDS+=($!)
wait_http "http://127.0.0.1:$SD_PORT/targets.json" 30

PYTHONPATH="$REPO/e2e" "$PYTHON" -m simulator --kubeconfig "$KUBECONFIG_FILE" \
  --host 0.0.0.0 --port "$SIM_PORT" >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SIM_PORT/metrics" 30
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"dabba_target": "simulator"}}]\n' "$SIM_PORT" \
  >"$TARGETS_DIR/simulator.json"

PROM_PORT=$(free_port)
kc -n "$MONITORING_NS" port-forward svc/kps-prometheus "$PROM_PORT:9090" >"$WORK/port-forward.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 60

# -- 7. the suite ---------------------------------------------------------------------------------
say "running pytest e2e"
export DABBA_E2E_KUBECONFIG=$KUBECONFIG_FILE
export DABBA_E2E_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
export DABBA_E2E_OPERATOR=chart
export DABBA_E2E_OPERATOR_NAMESPACE=$OPERATOR_NS
export DABBA_E2E_OPERATOR_SELECTOR=app.kubernetes.io/instance=dabba
export DABBA_E2E_TARGETS_DIR=$TARGETS_DIR
export DABBA_E2E_HOST_ADDRESS=$HOST_ADDRESS
export KUBECONFIG=$KUBECONFIG_FILE
export NO_PROXY=127.0.0.1,localhost,$HOST_ADDRESS
cd "$REPO"
set +e
"$PYTHON" -m pytest e2e ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"}
status=$?
set -e
if [ $status -ne 0 ]; then
  say "e2e failed; operator logs follow"
  kc -n "$OPERATOR_NS" logs -l app.kubernetes.io/instance=dabba --tail=200 --prefix || true
fi
exit $status
