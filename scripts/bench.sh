#!/usr/bin/env bash
# Runs chipward-bench with a throwaway PostgreSQL server of its own on a
# loopback port, so issuance is measured on SQLite and on PostgreSQL in one
# run. Needs Debian's postgresql package (scripts/test.sh installs it).
# Arguments go to chipward-bench (--rounds, --seconds, --tasks, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL binaries not found: apt-get install postgresql" >&2; exit 1; }
data=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$data"
  as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
  "${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap stop EXIT
"${as_pg[@]}" "$bin/initdb" -D "$data/db" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=on" start >/dev/null
"${as_pg[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench

cargo build --release --locked -q -p chipward-device-sim --bin chipward-bench
./target/release/chipward-bench --postgres "postgres://postgres@127.0.0.1:$port/bench" "$@"
