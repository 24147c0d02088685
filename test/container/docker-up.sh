#!/usr/bin/env bash
# Gets this machine ready for the container tests (test/container): installs Docker and
# debootstrap from Debian if missing, starts the Docker daemon if it does not answer, and makes
# the base images that service/Dockerfile names (test/container/make-base-images.sh). Runs as root;
# CI calls it before the tests. Safe to run again: each step is skipped when already done.
#
# Environment:
#   DOCKERD_LOG           where a daemon started here writes its log (default /tmp/dockerd.log)
#   DOCKERD_WAIT_SECONDS  how long to wait for a started daemon to answer (default 60)
set -euo pipefail
cd "$(dirname "$0")/../.."

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

log() { printf '[docker-up] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ "$(id -u)" == 0 ]] || die "run as root: it installs packages and starts the Docker daemon"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [[ ${#missing[@]} -gt 0 ]]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v npm >/dev/null || die "npm not found: the base images need it (install Node.js first)"

if docker info >/dev/null 2>&1; then
  log "Docker daemon answers"
else
  log "starting dockerd (log: $DOCKERD_LOG)"
  # Its own session, so it outlives this script and whatever process group CI kills after it.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  dockerd_pid=$!
  waited=0
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      tail -n 20 "$DOCKERD_LOG" >&2
      die "dockerd exited (log above)"
    fi
    if ((waited >= DOCKERD_WAIT_SECONDS)); then
      tail -n 20 "$DOCKERD_LOG" >&2
      die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s (log above)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "Docker daemon answers after ${waited}s (pid $dockerd_pid, left running)"
fi

bash test/container/make-base-images.sh
