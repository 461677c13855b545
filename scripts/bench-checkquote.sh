#!/usr/bin/env bash
# Times `chipward-verifier check-quote` against `tpm2_checkquote` on the same
# quote files, made by tpm2-tools against a throwaway swtpm on loopback.
# Both tools are whole processes, so this compares what an operator's script
# would see per quote, start-up included. Usage: scripts/bench-checkquote.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}

for tool in swtpm swtpm_setup swtpm_localca tpm2_quote tpm2_checkquote; do
  command -v "$tool" >/dev/null || { echo "$tool missing: apt-get install swtpm swtpm-tools tpm2-tools" >&2; exit 1; }
done
cargo build --release -q -p chipward-verifier
ours=$PWD/target/release/chipward-verifier

work=$(mktemp -d)
trap 'kill "$swtpm_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/state" "$work/ca" "$work/ek"
cat > "$work/localca.conf" <<CONF
statedir = $work/ca
signingkey = $work/ca/signkey.pem
issuercert = $work/ca/issuercert.pem
certserial = $work/ca/certserial
CONF
printf -- '--platform-manufacturer Chipward\n--platform-version 2.1\n--platform-model bench\n' > "$work/localca.options"
printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\n' \
  "$(command -v swtpm_localca)" "$work/localca.conf" "$work/localca.options" > "$work/setup.conf"
swtpm_setup --tpm2 --tpmstate "$work/state" --create-ek-cert --config "$work/setup.conf" \
  --write-ek-cert-files "$work/ek" --overwrite >/dev/null

port=$(python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass')
swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$work/state" \
  --flags not-need-init,startup-clear &
swtpm_pid=$!
sleep 0.5
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port" TSS2_LOG=all+none
cd "$work"
tpm2_createak -C 0x81010001 -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pem -f pem >/dev/null
tpm2_flushcontext -t
nonce=$(python3 -c 'import os; print(os.urandom(32).hex())')
tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7,16 -q "$nonce" -m q.msg -s q.sig -o q.pcrs -g sha256 >/dev/null

time_runs() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs / 1000 ))
}
ours_us=$(time_runs "$ours" check-quote -u ak.pem -m q.msg -s q.sig -f q.pcrs -q "$nonce")
theirs_us=$(time_runs tpm2_checkquote -u ak.pem -m q.msg -s q.sig -f q.pcrs -q "$nonce" -g sha256)
"$ours" check-quote -u ak.pem -m q.msg -s q.sig -f q.pcrs -q "$nonce" >/dev/null
tpm2_checkquote -u ak.pem -m q.msg -s q.sig -f q.pcrs -q "$nonce" -g sha256 >/dev/null

echo "runs per tool                $runs (ECDSA P-256 quote over 9 PCRs)"
echo "chipward-verifier check-quote  ${ours_us} us per run"
echo "tpm2_checkquote                ${theirs_us} us per run"
python3 -c "print(f'ratio (tpm2_checkquote / ours)  {$theirs_us / $ours_us:.2f}')"
