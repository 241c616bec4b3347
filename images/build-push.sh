#!/usr/bin/env bash
# Build and push the kit's images to your registry, then print the `fleetkit:images` config that
# pins them by digest. One command:
#
#   images/build-push.sh REGISTRY/NAMESPACE [--platform linux/amd64] [--no-vllm]
#
#   images/build-push.sh 123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetkit    # ECR
#   images/build-push.sh europe-west4-docker.pkg.dev/my-project/fleetkit          # Artifact Registry
#   images/build-push.sh myregistry.azurecr.io/fleetkit                           # ACR
#
# Builds (docker buildx, pushed with --push, digests read from --metadata-file):
#   REGISTRY/NAMESPACE/fleetkit-weights:<agent version>   images/weight-cache/Dockerfile (the weight agent)
#   REGISTRY/NAMESPACE/fleetkit-vllm:v<vLLM version>      images/vllm/Dockerfile (vLLM + the agent; --no-vllm skips)
# Versions come from images/weight-cache/pyproject.toml and the FROM line of images/vllm/Dockerfile.
# Log in first (aws ecr get-login-password | docker login ..., gcloud auth configure-docker ...,
# az acr login ...). Paste the printed block into stacks/fleet.yaml (every stack) or one stack file.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dest=${1%/}; shift
platform=linux/amd64
build_vllm=1
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platform=$2; shift 2 ;;
    --no-vllm) build_vllm=0; shift ;;
    *) usage ;;
  esac
done
case "$dest" in */*) ;; *) echo "give REGISTRY/NAMESPACE, e.g. ghcr.io/acme" >&2; exit 2 ;; esac
registry=${dest%%/*}
namespace=${dest#*/}

agent_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' images/weight-cache/pyproject.toml | head -n1)
vllm_tag=$(sed -n 's/^FROM vllm\/vllm-openai:\(v[^ ]*\).*/\1/p' images/vllm/Dockerfile | head -n1)
[ -n "$agent_version" ] && [ -n "$vllm_tag" ] || { echo "cannot read the image versions" >&2; exit 1; }

meta=$(mktemp -d)
trap 'rm -rf "$meta"' EXIT

build() {  # name tag dockerfile context
  docker buildx build --platform "$platform" -f "$3" -t "$dest/$1:$2" \
    --metadata-file "$meta/$1.json" --push "$4" >&2
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$meta/$1.json"
}

agent_digest=$(build fleetkit-weights "$agent_version" images/weight-cache/Dockerfile images/weight-cache)
echo "# pushed: $dest/fleetkit-weights:$agent_version@$agent_digest" >&2
cat <<EOF
fleetkit:
  images:
    weights_agent:
      registry: $registry
      repository: $namespace/fleetkit-weights
      tag: "$agent_version"
      digest: $agent_digest
EOF
if [ "$build_vllm" = 1 ]; then
  vllm_digest=$(build fleetkit-vllm "$vllm_tag" images/vllm/Dockerfile images/weight-cache)
  echo "# pushed: $dest/fleetkit-vllm:$vllm_tag@$vllm_digest" >&2
  cat <<EOF
    vllm:
      registry: $registry
      repository: $namespace/fleetkit-vllm
      tag: "$vllm_tag"
      digest: $vllm_digest
EOF
fi
