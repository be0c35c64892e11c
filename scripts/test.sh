#!/usr/bin/env bash
# Runs every test: the core crate's tests, unit and API tests of sfsim, the
# extension's unit tests and #[pg_test]s, the third-party client tests, and the end-to-end scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== salesforce_core: the client and the pure logic, without PostgreSQL"
cargo test -p salesforce_core

echo "== sfsim: unit, SOQL rule and HTTP API tests"
# Apart from salesforce_core: built together, reqwest's features unify and
# sfsim's test client would take gzip apart before its tests see it.
cargo test -p sfsim
cargo build -q -p sfsim
export SFSIM_BIN=$PWD/target/debug/sfsim

echo "== pg_salesforce: unit tests and #[pg_test]s against sfsim"
source scripts/lib.sh
start_sfsim "$SFSIM_BIN" --seed demo --daily-limit 1000000
trap stop_sfsim EXIT
PGRX_TEST_DIR=${PGRX_TEST_DIR:-/tmp/pg_salesforce-pgrx-test}
rm -rf "$PGRX_TEST_DIR"
install -d -o postgres -g postgres "$PGRX_TEST_DIR"
# One at a time: the tests read sfsim's shared request log.
RUST_TEST_THREADS=1 cargo pgrx test pg15 --runas postgres --pgdata "$PGRX_TEST_DIR/pgdata"
stop_sfsim
trap - EXIT

echo "== simple-salesforce against sfsim"
python3 -m pytest -q sfsim/clients/python

echo "== jsforce against sfsim"
(cd sfsim/clients/node && node --test)

echo "== end-to-end"
bash tests/e2e/run.sh
