#!/usr/bin/env bash
# Fetches the documentation UI that /docs serves (RapiDoc, MIT, a single script) from
# the npm registry into ui/vendor/, where the build compiles it in. The version and
# the tarball's checksum are pinned: a different file is refused. Does nothing when
# the file is there already; without npm or the registry, /docs says how to get it
# and /openapi.json is served all the same.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=9.3.8
sha256=b04086a71c2002169c43e5b0f25d7f694b20eee7a95ddc233b491cf9a54b3ef0
out="$repo/ui/vendor"
[[ -s "$out/rapidoc-min.js" ]] && exit 0
if ! command -v npm >/dev/null; then
  echo "fetch-docs-ui: npm not found; /docs will be left out (apt-get install npm)" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "rapidoc@$version" >/dev/null 2>"$tmp/npm.log"); then
  echo "fetch-docs-ui: npm pack rapidoc@$version failed; /docs will be left out:" >&2
  cat "$tmp/npm.log" >&2
  exit 0
fi
echo "$sha256  $tmp/rapidoc-$version.tgz" | sha256sum -c --quiet - || {
  echo "fetch-docs-ui: rapidoc-$version.tgz does not have the pinned checksum; refusing it" >&2
  exit 1
}
tar -xzf "$tmp/rapidoc-$version.tgz" -C "$tmp" package/dist/rapidoc-min.js
mkdir -p "$out"
cp "$tmp/package/dist/rapidoc-min.js" "$out/rapidoc-min.js.tmp"
mv "$out/rapidoc-min.js.tmp" "$out/rapidoc-min.js"
echo "fetch-docs-ui: ui/vendor/rapidoc-min.js (rapidoc $version)"
