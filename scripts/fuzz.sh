#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for a bounded time, one
# after the other, starting from the committed seeds in fuzz/corpus/.
# Prints, per target, how many inputs it ran, how many new ones it kept,
# the corpus size after the run (seeds included) and whether it crashed;
# exits non-zero if any target crashed, with the crashing input left in
# fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 30)
#   FUZZ_SANITIZER=none  builds without AddressSanitizer (default: address)
#   FUZZ_TARGETS="a b"   runs only these targets
#
# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address); the
# pinned stable toolchain accepts them under RUSTC_BOOTSTRAP=1. What the
# fuzzer adds to the corpus stays in fuzz/run/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi
sanitizer="${FUZZ_SANITIZER:-address}"

log() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || {
  echo "cargo not found: install Rust 1.95 with rustup first (see README)" >&2
  exit 1
}
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

export RUSTC_BOOTSTRAP=1
# The fuzz workspace always builds into fuzz/target, whatever target folder
# the environment names for the main workspace: its flags differ anyway.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
# Cargo caches what rustc answered, refusals included: a build tried once
# without RUSTC_BOOTSTRAP would otherwise keep failing on -Z flags.
export CARGO_CACHE_RUSTC_INFO=0

log "building the fuzz targets (sanitizer: $sanitizer)"
build_start=$SECONDS
cargo fuzz build --sanitizer "$sanitizer"
echo "built in $((SECONDS - build_start)) s"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
mkdir -p fuzz/run/logs
crashed=()
results=()
for target in $targets; do
  log "fuzzing $target for ${seconds} s"
  mkdir -p "fuzz/run/corpus/$target"
  out="fuzz/run/logs/$target.log"
  options=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
  if [ -f "fuzz/dict/$target.dict" ]; then
    options+=(-dict="$PWD/fuzz/dict/$target.dict")
  fi
  status=0
  # The first folder receives what the fuzzer finds; the seeds are read only.
  cargo fuzz run --sanitizer "$sanitizer" "$target" \
    "fuzz/run/corpus/$target" "fuzz/corpus/$target" -- "${options[@]}" >"$out" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)"
  found="$(sed -n 's/^stat::new_units_added: *//p' "$out" | tail -n 1)"
  corpus="$(find "fuzz/run/corpus/$target" "fuzz/corpus/$target" -type f | wc -l)"
  if [ "$status" -eq 0 ]; then
    verdict="no crash"
  else
    verdict="CRASH (exit $status)"
    crashed+=("$target")
    tail -n 40 "$out"
  fi
  results+=("$(printf '%-20s %12s %6s %7s  %s' "$target" "${runs:-?}" "${found:-?}" "$corpus" "$verdict")")
done

log "fuzzing results, ${seconds} s per target, $((SECONDS - build_start)) s in all"
printf '%-20s %12s %6s %7s  %s\n' "target" "runs" "new" "corpus" "result"
printf '%s\n' "${results[@]}"
if [ "${#crashed[@]}" -gt 0 ]; then
  echo "crashed: ${crashed[*]}; inputs in fuzz/artifacts/, logs in fuzz/run/logs/" >&2
  exit 1
fi
