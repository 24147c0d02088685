#!/usr/bin/env bash
# Deletes the dev stack's Kind cluster and its local registry container (and the images pushed
# to it). Safe to run when either is already gone. Run `pulumi destroy --stack dev` first if the
# stack should forget its resources too; otherwise `pulumi refresh` will find them gone.
#
#   KIND_CLUSTER_NAME  cluster name; default mlscore
set -euo pipefail

cluster_name="${KIND_CLUSTER_NAME:-mlscore}"
registry_name="kind-registry"

# Captured first: grep -q closing the pipe early would fail `kind` under pipefail.
clusters="$(kind get clusters 2>/dev/null)"
if grep -qx "${cluster_name}" <<<"${clusters}"; then
  kind delete cluster --name "${cluster_name}"
else
  echo "kind-down: no cluster ${cluster_name}"
fi

if docker inspect "${registry_name}" >/dev/null 2>&1; then
  docker rm -f "${registry_name}" >/dev/null
  echo "kind-down: removed registry ${registry_name}"
else
  echo "kind-down: no registry ${registry_name}"
fi
