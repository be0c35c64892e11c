# Helpers shared by the demo, the end-to-end tests and the benchmarks: a throwaway
# PostgreSQL cluster and an sfsim, both on this machine only.
# shellcheck shell=bash

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_postgres() { if [ "$(id -u)" = 0 ]; then sudo -u postgres "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_cluster DIR [postgresql.conf lines...]: initdb and start a cluster
# listening only on a Unix socket in DIR. Sets PGHOST and PGPORT.
start_cluster() {
  local dir=$1; shift
  rm -rf "$dir"
  install -d -o postgres -g postgres "$dir"
  as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  printf '%s\n' "listen_addresses = ''" "unix_socket_directories = '$dir'" "$@" | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
  export PGHOST=$dir PGPORT
  PGPORT=$(free_port)
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -o "-p $PGPORT" -l "$dir/server.log" -w start >/dev/null
}

stop_cluster() {
  as_postgres "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

sql() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d "${PGDATABASE:-postgres}" "$@"; }

# quietly RUN...: runs a command, showing its output only if it fails.
quietly() {
  local log; log=$(mktemp)
  if "$@" >"$log" 2>&1; then rm -f "$log"; else cat "$log" >&2; rm -f "$log"; return 1; fi
}

# start_sfsim BINARY [args...]: starts sfsim on a free loopback port. Sets
# SFSIM_URL and SFSIM_PID, and with --pubsub-listen SFSIM_PUBSUB_URL.
start_sfsim() {
  local binary=$1; shift
  local out; out=$(mktemp)
  local pubsub=; case " $* " in *" --pubsub-listen "*) pubsub=1 ;; esac
  "$binary" --listen 127.0.0.1:0 "$@" >"$out" 2>&1 &
  SFSIM_PID=$!
  for _ in $(seq 300); do
    [ -s "$out" ] && { [ -z "$pubsub" ] || grep -q '^pubsub: ' "$out"; } && break
    sleep 0.1
  done
  SFSIM_URL=$(head -n 1 "$out")
  SFSIM_PUBSUB_URL=$(sed -n 's/^pubsub: //p' "$out")
  rm -f "$out"
  case "$SFSIM_URL" in http*) ;; *) echo "sfsim did not start: $SFSIM_URL" >&2; return 1 ;; esac
  export SFSIM_URL SFSIM_PID SFSIM_PUBSUB_URL
}

# bench_cluster DIR [postgresql.conf lines...]: for benchmarks, a release
# build of the extension and of sfsim, and a cluster in DIR, both stopped on exit.
bench_cluster() {
  quietly cargo pgrx install --release --pg-config "$PG_BIN/pg_config"
  cargo build --release -q -p sfsim
  start_cluster "$@"
  # shellcheck disable=SC2064
  trap "stop_cluster '$1'; stop_sfsim" EXIT
}

# setup_org SCHEMA OBJECTS: the extension, server `org` for the running sfsim
# with the demo org's credentials, and OBJECTS (such as "contact, account")
# imported into SCHEMA.
setup_org() {
  sql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_salesforce;
CREATE SERVER org FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '$SFSIM_URL');
CREATE USER MAPPING FOR postgres SERVER org OPTIONS (grant_type 'password', client_id 'sfsim-client-id',
  client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN');
CREATE SCHEMA $1;
IMPORT FOREIGN SCHEMA salesforce LIMIT TO ($2) FROM SERVER org INTO $1;
SQL
}

stop_sfsim() { [ -n "${SFSIM_PID:-}" ] && kill "$SFSIM_PID" 2>/dev/null; wait "$SFSIM_PID" 2>/dev/null || true; }
