#!/usr/bin/env bash
# Creates the dev stack's Kind cluster with a local image registry wired into its nodes, as
# Kind's local-registry guide (https://kind.sigs.k8s.io/docs/user/local-registry/) describes:
# the host pushes to localhost:5001 and every node pulls the same name from the registry
# container. Safe to run again: each step checks what already exists.
#
#   KIND_CLUSTER_NAME    cluster name; default mlscore (the stack's kindClusterName)
#   KIND_NODE_IMAGE      node image for `kind create cluster --image`; default: the one
#                        cluster.yaml pins
#   KIND_REGISTRY_IMAGE  registry image; default registry:2
set -euo pipefail

# The release cluster.yaml's node image was built for. It is also past v0.28, before which
# kindnetd's NetworkPolicies dropped the kubelet's probes under a deny-all policy (kind#3875), and
# the stack denies all by default.
min_kind_version="0.33.0"

cluster_name="${KIND_CLUSTER_NAME:-mlscore}"
registry_name="kind-registry"
registry_port="5001"
registry_image="${KIND_REGISTRY_IMAGE:-registry:2}"
kind_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for tool in docker kind kubectl; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "kind-up: ${tool} is not installed; see the README's prerequisites" >&2
    exit 1
  fi
done

kind_version="$(kind version | sed -nE 's/^kind v([0-9]+\.[0-9]+\.[0-9]+).*/\1/p')"
if [ -z "${kind_version}" ] ||
  ! printf '%s\n%s\n' "${min_kind_version}" "${kind_version}" | sort -V -C; then
  echo "kind-up: kind ${kind_version:-of unknown version} is too old; install kind v${min_kind_version} or later (see the README's prerequisites)" >&2
  exit 1
fi

# 1. The registry, published on the host's loopback only.
if [ "$(docker inspect -f '{{.State.Running}}' "${registry_name}" 2>/dev/null || true)" != "true" ]; then
  if docker inspect "${registry_name}" >/dev/null 2>&1; then
    docker start "${registry_name}" >/dev/null
  else
    docker run -d --restart=always -p "127.0.0.1:${registry_port}:5000" --network bridge \
      --name "${registry_name}" "${registry_image}" >/dev/null
  fi
  echo "kind-up: registry ${registry_name} serving on localhost:${registry_port}"
fi

# 2. The cluster.
# Captured first: grep -q closing the pipe early would fail `kind` under pipefail.
clusters="$(kind get clusters 2>/dev/null)"
if grep -qx "${cluster_name}" <<<"${clusters}"; then
  echo "kind-up: cluster ${cluster_name} already exists"
else
  create_args=(create cluster --name "${cluster_name}" --config "${kind_dir}/cluster.yaml")
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    create_args+=(--image "${KIND_NODE_IMAGE}")
  fi
  kind "${create_args[@]}"
fi

# 3. On every node, map localhost:5001 to the registry container: inside a node, localhost is
# the node itself, not the host.
registry_dir="/etc/containerd/certs.d/localhost:${registry_port}"
for node in $(kind get nodes --name "${cluster_name}"); do
  docker exec "${node}" mkdir -p "${registry_dir}"
  printf '[host."http://%s:5000"]\n' "${registry_name}" |
    docker exec -i "${node}" cp /dev/stdin "${registry_dir}/hosts.toml"
done

# 4. Put the registry on the nodes' network so they reach it by name.
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "${registry_name}")" = "null" ]; then
  docker network connect kind "${registry_name}"
fi

# 5. Tell tools where the local registry is (KEP-1755).
kubectl --context "kind-${cluster_name}" apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${registry_port}"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML

echo "kind-up: cluster ${cluster_name} ready (context kind-${cluster_name}); next: pulumi up --stack dev"
