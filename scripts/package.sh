#!/usr/bin/env bash
# Builds target/pkg/postgresql-15-salesforce_<version>_amd64.deb: the library,
# the control file and every SQL script (the current install script, the
# released ones and every upgrade), for Debian's PostgreSQL 15. Installing it
# needs no Rust toolchain: dpkg -i, then CREATE EXTENSION pg_salesforce.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
root=target/pkg/root
rm -rf "$root"
# PACKAGE_PROFILE=dev builds faster, for tests of the packaging itself.
cargo pgrx package --profile "${PACKAGE_PROFILE:-release}" --pg-config "$pg_config" --out-dir "$root" >/dev/null
extdir=$root$("$pg_config" --sharedir)/extension
# Released install scripts, which cargo pgrx does not copy: a database made
# with an older version can be created anew from the same package.
install -m 644 sql/pg_salesforce--[0-9]*.[0-9]*.[0-9]*.sql "$extdir/"
install -d "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: postgresql-15-salesforce
Version: $version
Architecture: amd64
Maintainer: pg_salesforce developers <pg-salesforce@localhost>
Depends: postgresql-15, libc6, libgcc-s1
Section: database
Priority: optional
Description: Salesforce inside PostgreSQL 15
 The salesforce foreign data wrapper (IMPORT FOREIGN SCHEMA, SOQL pushdown),
 writes tied to the local transaction, and a sync worker that keeps local
 copies of Salesforce objects current.
CONTROL
deb=target/pkg/postgresql-15-salesforce_${version}_amd64.deb
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$PWD/$deb"
