#!/usr/bin/env bash
# Builds, from Go modules with the ordinary `go` command, the real Pulumi engine and a Kubernetes
# control plane for `npm run test:engine`, and reuses what an earlier run built for the same
# versions. Prints each step and how long it took on stderr, and on stdout one line: the folder
# that holds every binary the test needs.
#
#   pulumi                     github.com/pulumi/pulumi/pkg/v3/cmd/pulumi          v3.274.1
#   pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4     4.25.0 (see below)
#   etcd                       go.etcd.io/etcd/server/v3 (etcdmain)                v3.6.8
#   kube-apiserver, kube-controller-manager, kube-scheduler  k8s.io/kubernetes    v1.36.1
#   kwok                       sigs.k8s.io/kwok/cmd/kwok                           v0.8.0
#
# Kubernetes 1.36.1 is the version kwok v0.8.0 is built against (its client libraries v0.36.1), and
# etcd 3.6.8 the one Kubernetes 1.36.1 requires in its go.mod.
#
# Not built, and why:
# - pulumi-language-nodejs: the Go module proxy serves no version of
#   github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 (403 for every version), so
#   the test runs the program as an Automation API inline program, which needs no language host,
#   and starts the policy pack through a launcher script (test/engine/engine-run.ts).
# - The Docker and Google Cloud providers: the `cluster` target needs neither.
#
# The proxy serves pulumi-kubernetes/provider/v4 only at v4.0.0-20260115033456-f47bc2d6f199, the
# commit tagged v4.25.0; package-lock.json has @pulumi/kubernetes 4.34.2. The binary reports its
# real version, 4.25.0, and the test installs it under 4.34.2, the version the SDK asks for (the
# engine then warns that it expected >=4.34.2).
#
# What a machine already has is used instead of building it:
#   pulumi on PATH                         the CLI (its version is printed)
#   MLSCORE_ENGINE_KUBECONTEXT set         an existing cluster: no etcd, kube-* or kwok is built
#                                          (the test then runs on that context, see the README)
#   MLSCORE_ENGINE_PROVIDER=<binary>       a pulumi-resource-kubernetes to use as is
#
# Environment:
#   MLSCORE_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/mlscore); binaries go
#                       to <root>/engine/<name>-<version>-<go version>/
#   GOMODCACHE, GOCACHE as for any go command (point them at empty folders for a cold build)
#   BUILD_PARALLELISM   go build -p (default 2); binaries are built one at a time
set -euo pipefail

PULUMI_VERSION=v3.274.1
PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
PROVIDER_VERSION=4.25.0
PROVIDER_SDK_VERSION=v4.25.0
ETCD_VERSION=v3.6.8
KUBERNETES_VERSION=v1.36.1
KWOK_VERSION=v0.8.0

CACHE_ROOT="${MLSCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlscore}/engine"
PARALLELISM="${BUILD_PARALLELISM:-2}"
GO_VERSION="$(go env GOVERSION)"
# Only the proxy: module downloads must never fall back to a VCS host.
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

BIN_DIR="$CACHE_ROOT/bin"
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

# step NAME VERSION BINARY... -- COMMAND...: runs COMMAND (which builds every BINARY into $OUT)
# unless a cache folder for NAME at VERSION and this Go already holds them, then links them into
# $BIN_DIR. Printed: what it builds or reuses, and the seconds it took.
step() {
  local name="$1" version="$2"
  shift 2
  local binaries=()
  while [ "$1" != "--" ]; do
    binaries+=("$1")
    shift
  done
  shift
  local dir="$CACHE_ROOT/$name-$version-$GO_VERSION"
  local missing=0 binary
  for binary in "${binaries[@]}"; do
    [ -x "$dir/$binary" ] || missing=1
  done
  if [ "$missing" = 0 ]; then
    log "reuse  $name $version ($dir)"
  else
    log "build  $name $version"
    local started=$SECONDS
    OUT="$WORK/out-$name"
    rm -rf "$OUT" && mkdir -p "$OUT"
    "$@"
    for binary in "${binaries[@]}"; do
      [ -x "$OUT/$binary" ] || die "$name: $binary was not built"
    done
    rm -rf "$dir.tmp" && mv "$OUT" "$dir.tmp" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
    log "built  $name $version in $((SECONDS - started)) s"
  fi
  for binary in "${binaries[@]}"; do
    ln -sfn "$dir/$binary" "$BIN_DIR/$binary"
  done
}

go_build() { go build -trimpath -p "$PARALLELISM" "$@"; }

# The go.mod of MODULE@VERSION, downloaded from the proxy; prints its path.
module_gomod() {
  go mod download -json "$1@$2" | node -e \
    'const m=JSON.parse(require("fs").readFileSync(0,"utf8")); if(m.Error) {console.error(m.Error); process.exit(1)} console.log(m.GoMod)'
}

# The source folder of MODULE@VERSION, downloaded from the proxy; prints its path.
module_dir() {
  go mod download -json "$1@$2" | node -e \
    'const m=JSON.parse(require("fs").readFileSync(0,"utf8")); if(m.Error) {console.error(m.Error); process.exit(1)} console.log(m.Dir)'
}

# Prints `go mod edit` flags that repeat GOMOD's replace lines in a wrapper module: a replace by
# a folder of the same repository (../sdk, ./staging/src/k8s.io/api) becomes that module at
# VERSION_OF_LOCAL, as published from the same release; any other replace is copied.
wrapper_replaces() {
  local gomod="$1" version_of_local="$2"
  go mod edit -json "$gomod" | VERSION_OF_LOCAL="$version_of_local" node -e '
    const mod = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const r of mod.Replace ?? []) {
      const target = r.New.Version ? `${r.New.Path}@${r.New.Version}` : null;
      if (target) console.log(`-replace=${r.Old.Path}=${target}`);
      else if (/^\.\.?\//.test(r.New.Path) && !r.New.Path.includes("FORBIDDEN")) {
        console.log(`-replace=${r.Old.Path}=${r.Old.Path}@${process.env.VERSION_OF_LOCAL}`);
      }
    }'
}

# A wrapper module named NAME that requires MODULE@VERSION with its replace lines; prints its folder.
wrapper_module() {
  local name="$1" module="$2" version="$3" version_of_local="$4"
  local dir="$WORK/wrapper-$name" gomod
  gomod="$(module_gomod "$module" "$version")"
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init "mlscore.test/$name" >/dev/null 2>&1
    go mod edit -go="$(go mod edit -json "$gomod" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).Go)')"
    go mod edit -require="$module@$version"
    mapfile -t replaces < <(wrapper_replaces "$gomod" "$version_of_local")
    [ "${#replaces[@]}" = 0 ] || go mod edit "${replaces[@]}"
  )
  echo "$dir"
}

build_pulumi() {
  local dir
  dir="$(wrapper_module pulumi github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" "$PULUMI_VERSION")"
  # pkg/go.mod replaces sdk/v3 by ../sdk: the wrapper takes sdk/v3 at the same release.
  (cd "$dir" && go_build -o "$OUT/pulumi" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
}

build_provider() {
  local source dir="$WORK/provider"
  source="$(module_dir github.com/pulumi/pulumi-kubernetes/provider/v4 "$PROVIDER_MODULE_VERSION")"
  cp -r "$source" "$dir" && chmod -R u+w "$dir"
  (
    cd "$dir"
    # provider/go.mod replaces the sdk by ../sdk: take the sdk published from the same commit.
    go mod edit -replace="github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$PROVIDER_SDK_VERSION"
    # main.go embeds schema-embed.json, which the project's go:generate writes with the version.
    VERSION="$PROVIDER_VERSION" GOFLAGS="$GOFLAGS -trimpath" go generate ./cmd/pulumi-resource-kubernetes
    go_build -o "$OUT/pulumi-resource-kubernetes" \
      -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PROVIDER_VERSION" \
      ./cmd/pulumi-resource-kubernetes
  )
}

build_etcd() {
  local dir
  dir="$(wrapper_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION")"
  # etcd's own main.go is in a module the proxy does not serve; it is this one call.
  cat >"$dir/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$dir" && go_build -o "$OUT/etcd" .)
}

build_kubernetes() {
  local dir minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  # Each staging module k8s.io/<x> is published as v0.<minor>.<patch> from the same release.
  dir="$(wrapper_module kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" "v0.${KUBERNETES_VERSION#v1.}")"
  # hack/lib/version.sh's ldflags: without them the server reports v0.0.0-master and clients
  # (the Pulumi provider among them) reject or misread it.
  local flags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    local started=$SECONDS
    (cd "$dir" && go_build -o "$OUT/$component" -ldflags "$flags" "k8s.io/kubernetes/cmd/$component")
    log "       $component in $((SECONDS - started)) s"
  done
}

build_kwok() {
  GOBIN="$OUT" go install -trimpath -p "$PARALLELISM" \
    -ldflags "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

started=$SECONDS
log "Go $GO_VERSION, GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE), cache $CACHE_ROOT"

if command -v pulumi >/dev/null && [ "$(command -v pulumi)" != "$BIN_DIR/pulumi" ]; then
  log "use    pulumi on PATH: $(command -v pulumi) ($(pulumi version))"
  ln -sfn "$(command -v pulumi)" "$BIN_DIR/pulumi"
else
  step pulumi "$PULUMI_VERSION" pulumi -- build_pulumi
fi
if [ -n "${MLSCORE_ENGINE_PROVIDER:-}" ]; then
  log "use    provider $MLSCORE_ENGINE_PROVIDER"
  ln -sfn "$MLSCORE_ENGINE_PROVIDER" "$BIN_DIR/pulumi-resource-kubernetes"
else
  step pulumi-resource-kubernetes "$PROVIDER_VERSION" pulumi-resource-kubernetes -- build_provider
fi
if [ -n "${MLSCORE_ENGINE_KUBECONTEXT:-}" ]; then
  log "use    the cluster of kubeconfig context $MLSCORE_ENGINE_KUBECONTEXT: no control plane built"
else
  step etcd "$ETCD_VERSION" etcd -- build_etcd
  step kubernetes "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler -- build_kubernetes
  step kwok "$KWOK_VERSION" kwok -- build_kwok
fi
log "toolchain ready in $((SECONDS - started)) s: $BIN_DIR"
echo "$BIN_DIR"
