#!/usr/bin/env bash
# Regenerates the shipped configuration files from the code's defaults and doc comments:
#   config/huatuo-bamai.toml                     huatuo-bamai config default
#   the ConfigMap in deploy/kubernetes/daemonset.yaml   huatuo-bamai config default --daemonset
# tests/config_files.rs fails when either has drifted from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${HUATUO_BIN:-}" ]] || cargo build -q --bin huatuo-bamai
bin=${HUATUO_BIN:-target/debug/huatuo-bamai}
"$bin" config default > config/huatuo-bamai.toml
manifest=deploy/kubernetes/daemonset.yaml
embedded=$(mktemp)
"$bin" config default --daemonset | sed -e 's/^/    /' -e 's/^    $//' > "$embedded"
# Replace the block under `huatuo-bamai.toml: |` up to the next document separator.
awk -v file="$embedded" '
    /^  huatuo-bamai.toml: \|$/ { print; while ((getline line < file) > 0) print line; skip = 1; next }
    skip && /^---$/ { skip = 0 }
    !skip { print }
' "$manifest" > "$manifest.new"
mv "$manifest.new" "$manifest"
rm -f "$embedded"
echo "regenerated config/huatuo-bamai.toml and the ConfigMap in $manifest"
