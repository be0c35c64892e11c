#!/usr/bin/env bash
# Runs each end-to-end script in this folder against a fresh cluster and
# prints a closing 'N passed, N failed' line.
set -uo pipefail
cd "$(dirname "$0")"
source ../../scripts/lib.sh
quietly cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config || exit 1
passed=0 failed=0
for t in [0-9]*.sh; do
  if bash "$t"; then echo "ok   $t"; passed=$((passed + 1)); else echo "FAIL $t"; failed=$((failed + 1)); fi
done
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
