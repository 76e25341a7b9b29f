#!/bin/sh
# deploy/demo/provider.sh URL - register the demo provider on the gateway at
# URL (FATE-Flow's /v2/provider/register body built from components.json).
set -eu
cd "$(dirname "$0")/../.."
URL=${1:?usage: provider.sh GATEWAY_URL}
jq -n --slurpfile c deploy/providers/demo/components.json '{
  name: "bfia-demo", device: "docker", version: "1.0.0", protocol: "bfia",
  metadata: {base_url: "", image: "bfia-demo:1.0.0"},
  components_description: $c[0]}' |
  curl -sS -m 30 -H 'Content-Type: application/json' --data-binary @- "$URL/v2/provider/register"
