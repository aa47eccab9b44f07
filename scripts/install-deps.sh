#!/usr/bin/env bash
# Installs what offload needs to build and test, from Debian 12's packages. Only
# missing packages are installed, so a second run costs a few dpkg queries.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git curl openssl python3
  # libclang-rt-14-dev: clang's sanitizer runtimes and libFuzzer (scripts/build.sh fuzz);
  # clang-14 only recommends it, and recommends are not installed.
  clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev libpng-dev libsqlite3-dev libpq-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx-light postgresql-15 prometheus chromium
  python3-pytest python3-setuptools python3-pip python3-venv python3-fastapi python3-uvicorn python3-httpx python3-pil python3-jsonschema
)

# npm fetches the documentation UI (/docs) and the dashboard test's browser driver;
# Debian's when the machine has none of its own.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The documentation UI /docs serves, from the npm registry (pinned; see the script).
"$(dirname "$0")/fetch-docs-ui.sh"

# The dashboard test's browser driver (playwright-core, pinned by its lock file).
ui_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/ui"
# Again only when the lock file changed since the last install (a copy is kept beside it).
if ! cmp -s "$ui_tests/package-lock.json" "$ui_tests/node_modules/.offload-installed-lock" 2>/dev/null; then
  if (cd "$ui_tests" && npm ci --no-audit --no-fund --loglevel=error); then
    cp "$ui_tests/package-lock.json" "$ui_tests/node_modules/.offload-installed-lock"
  else
    # Only the dashboard's test needs it: the server builds and runs without.
    echo "install-deps: npm ci in tests/ui failed; the dashboard test (ui.dashboard) cannot run" >&2
  fi
fi
