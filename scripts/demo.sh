#!/usr/bin/env bash
# The fleet demo on the embedded defaults, from a fresh Debian 12 machine as
# root: installs swtpm and the TSS library so hosts with a real TPM 2.0 take
# part, then builds and runs chipward-demo. Arguments go to chipward-demo
# (--chips N, --no-faults, --all, --dir D). Needs Rust 1.95 (rustup).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || {
  echo "cargo not found: install Rust 1.95 with rustup first (see README)" >&2
  exit 1
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing swtpm and the TPM software stack" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    ca-certificates pkg-config gcc libc6-dev swtpm swtpm-tools libtss2-dev >/dev/null
fi

features=()
if pkg-config --exists tss2-esys 2>/dev/null; then
  features=(--features tpm)
else
  echo "==> libtss2-dev not found: running without TPM hosts" >&2
fi
exec cargo run --release --locked -q -p chipward-device-sim "${features[@]}" --bin chipward-demo -- "$@"
