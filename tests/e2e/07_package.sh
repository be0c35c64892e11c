#!/usr/bin/env bash
# The Debian package: built by scripts/package.sh, installed with dpkg -i,
# then used by a cluster of the system's PostgreSQL with the extension
# preloaded: create the extension, import, select, sync by the worker.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "$1" >&2; exit 1; }
# A dev build: what is tested is the package, and the release build's
# link-time optimization would add minutes to every test run.
deb=$(PACKAGE_PROFILE=dev bash "$root/scripts/package.sh" 2>/dev/null | tail -1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
[ "$(basename "$deb")" = "postgresql-15-salesforce_${version}_amd64.deb" ] || fail "unexpected package name: $deb"
# Listings are read whole: grep -q stopping early would break the pipe under pipefail.
contents=$(dpkg-deb -c "$deb")
grep -q "extension/pg_salesforce--0.1.0.sql" <<<"$contents" || fail "the package lacks the released 0.1.0 script"
dpkg -i "$deb" >/dev/null
status=$(dpkg -s postgresql-15-salesforce)
grep -q "^Status: install ok installed" <<<"$status" || fail "dpkg did not install the package"
dir=/tmp/pg_salesforce-e2e-package
start_sfsim "${SFSIM_BIN:?set SFSIM_BIN}" --seed demo
start_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
trap 'stop_cluster "$dir"; stop_sfsim' EXIT
setup_org crm "account, contact"
[ "$(sql -tA -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_salesforce'")" = "$version" ] || fail "not version $version"
accounts=$(sql -tA -c "SELECT count(*) FROM crm.account")
[ "$accounts" -gt 0 ] || fail "no accounts read through the foreign table"
sql -q -c "SET client_min_messages = warning" -c "SELECT salesforce.sync_enable('org', 'Account')" >/dev/null
for _ in $(seq 300); do
  [ "$(sql -tA -c "SELECT count(*) FROM salesforce.sync_runs WHERE status = 'succeeded'")" -gt 0 ] && break
  sleep 0.2
done
[ "$(sql -tA -c "SELECT count(*) FROM org.account")" = "$accounts" ] || fail "the worker's copy differs from the foreign table"
echo "package: installed with dpkg, imported, selected, synced by the worker"
