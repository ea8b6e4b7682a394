#!/usr/bin/env bash
# Build the local control-plane binaries from Go modules and cache them by version.
#
#   build.sh [k8s|etcd|kwok|helm|crds|all]
#
# Output: $DABBA_HOME/bin/<component>/<version>/...  (DABBA_HOME defaults to ~/.cache/dabba)
# Every step is idempotent: a finished component is skipped in milliseconds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"

DABBA_HOME=${DABBA_HOME:-$HOME/.cache/dabba}
BIN=$DABBA_HOME/bin
WORK=$DABBA_HOME/build
mkdir -p "$BIN" "$WORK"

export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
export NO_PROXY=${NO_PROXY:-127.0.0.1,localhost}
# Parallel package builds; lower it on a machine short of memory.
GOP=${DABBA_GO_PARALLEL:-2}

say() { printf '\033[1m[dabba build]\033[0m %s\n' "$*" >&2; }
stamp() { date +%s; }

# go build with a progress line every 200 compiled packages (a cold kube-apiserver is ~2000),
# the full output kept in a log that is shown when the build fails.
gobuild() {
  local label=$1; shift
  local log=$WORK/$label.build.log
  if ! go build -v "$@" 2>&1 | tee "$log" | awk -v label="$label" \
      'NR % 200 == 0 { printf "\033[1m[dabba build]\033[0m     %s: %d packages compiled\n", label, NR > "/dev/stderr"; fflush("/dev/stderr") }'; then
    say "go build of $label failed; last lines of $log:"; tail -40 "$log" >&2; return 1
  fi
}

gomod_json() {  # module@version -> the JSON of `go mod download -json`
  go mod download -json "$1"
}

build_k8s() {
  local out=$BIN/k8s/$K8S_VERSION
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kube-scheduler && -x $out/kubectl ]]; then
    return 0
  fi
  local t0; t0=$(stamp)
  say "kubernetes $K8S_VERSION: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (cold: about 5-10 min on 2 cores)"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local sver="v0.${K8S_VERSION#v1.}"
  local w=$WORK/k8s-$K8S_VERSION
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  go mod init local.invalid/dabba-k8s-build >/dev/null 2>&1
  say "  resolving k8s.io/kubernetes@$K8S_VERSION through the module proxy"
  gomod_json "k8s.io/kubernetes@$K8S_VERSION" > upstream.json
  local gomod commit bdate
  gomod=$(python3 -c 'import json;print(json.load(open("upstream.json"))["GoMod"])')
  commit=$(python3 -c 'import json;print((json.load(open("upstream.json")).get("Origin") or {}).get("Hash",""))')
  bdate=$(python3 -c 'import json;i=json.load(open("upstream.json"))["Info"];print(json.load(open(i))["Time"][:19]+"Z")')
  # The staging replace list is generated from upstream's go.mod: it changes between minors.
  go mod edit -json "$gomod" > upstream-gomod.json
  python3 - "$sver" > edits.txt <<'PY'
import json, sys
m = json.load(open("upstream-gomod.json")); sver = sys.argv[1]
print(f"-go={m['Go']}")
for g in m.get("Godebug") or []:
    print(f"-godebug={g['Key']}={g['Value']}")
for r in m["Require"]:
    if r["Path"].startswith("k8s.io/") and r["Version"] == "v0.0.0":
        print(f"-replace={r['Path']}={r['Path']}@{sver}")
PY
  say "  $(grep -c -- -replace= edits.txt) staging modules replaced with $sver"
  # shellcheck disable=SC2046
  go mod edit $(cat edits.txt) -require="k8s.io/kubernetes@$K8S_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  say "  go mod tidy (downloads the dependency graph)"
  if ! go mod tidy > tidy.log 2>&1; then
    say "go mod tidy failed:"; grep -v '^go: downloading' tidy.log | tail -30 >&2; return 1
  fi
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldf+=" -X $p.gitTreeState=clean -X $p.buildDate=$bdate"
    [[ -n $commit ]] && ldf+=" -X $p.gitCommit=$commit"
  done
  mkdir -p "$out.tmp"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    say "  go build $cmd ($(( $(stamp) - t0 ))s so far)"
    gobuild "$cmd" -p "$GOP" -trimpath -ldflags "$ldf" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "kubernetes $K8S_VERSION built in $(( $(stamp) - t0 ))s"
}

build_etcd() {
  local out=$BIN/etcd/$ETCD_VERSION
  [[ -x $out/etcd ]] && return 0
  local t0; t0=$(stamp)
  say "etcd $ETCD_VERSION"
  local w=$WORK/etcd-$ETCD_VERSION
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  go mod init local.invalid/dabba-etcd-build >/dev/null 2>&1
  if ! go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" > get.log 2>&1; then
    say "go get of etcd failed:"; tail -30 get.log >&2; return 1
  fi
  mkdir -p "$out.tmp"
  local ldf="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  gobuild etcd -p "$GOP" -trimpath -ldflags "$ldf" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  gobuild etcdctl -p "$GOP" -trimpath -ldflags "$ldf" -o "$out.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "etcd $ETCD_VERSION built in $(( $(stamp) - t0 ))s"
}

build_kwok() {
  local out=$BIN/kwok/$KWOK_VERSION
  [[ -x $out/kwok && -f $out/stages.yaml ]] && return 0
  local t0; t0=$(stamp)
  say "kwok $KWOK_VERSION"
  mkdir -p "$out.tmp"
  GOBIN=$out.tmp go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # v0.8 has no built-in stages: take kwokctl's defaults from the module itself.
  local dir; dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  : > "$out.tmp/stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$dir/kustomize/stage/$f"; } >> "$out.tmp/stages.yaml"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "kwok $KWOK_VERSION built in $(( $(stamp) - t0 ))s"
}

build_helm() {
  local out=$BIN/helm/$HELM_VERSION
  [[ -x $out/helm ]] && return 0
  local t0; t0=$(stamp)
  say "helm $HELM_VERSION"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  mkdir -p "$out.tmp"
  GOBIN=$out.tmp go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "helm $HELM_VERSION built in $(( $(stamp) - t0 ))s"
}

# Third-party CRDs the routers write, in their real published schemas, taken from the Go modules.
fetch_crds() {
  local out=$BIN/crds/istio-$ISTIO_API_VERSION-gwapi-$GATEWAY_API_VERSION
  [[ -f $out/istio.yaml && -f $out/gateway-api.yaml ]] && return 0
  say "third-party CRDs: istio.io/api@$ISTIO_API_VERSION, sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  mkdir -p "$out.tmp"
  local idir gdir
  idir=$(go mod download -json "istio.io/api@$ISTIO_API_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  gdir=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  cp "$idir/kubernetes/customresourcedefinitions.gen.yaml" "$out.tmp/istio.yaml"
  : > "$out.tmp/gateway-api.yaml"
  for f in "$gdir"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    { echo "---"; cat "$f"; } >> "$out.tmp/gateway-api.yaml"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
}

what=${1:-all}
case $what in
  k8s) build_k8s ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  helm) build_helm ;;
  crds) fetch_crds ;;
  all) build_etcd; build_kwok; fetch_crds; build_helm; build_k8s ;;
  *) echo "usage: $0 [k8s|etcd|kwok|helm|crds|all]" >&2; exit 2 ;;
esac
