#!/usr/bin/env bash
# Installs what building and testing pg_salesforce needs on a fresh Debian
# machine, skipping whatever is already there. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev sudo postgresql-15-cron)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v npm >/dev/null || missing+=(nodejs npm)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx 0.16.1" ]; then
  echo "setup: installing cargo-pgrx 0.16.1 (about 2 minutes)"
  # Unoptimized: it only drives cargo and PostgreSQL, and optimizing it
  # took 4 of a fresh machine's minutes.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install cargo-pgrx --version 0.16.1 --locked
fi
if ! grep -q '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
  cargo pgrx init --pg15 "$PG_CONFIG"
fi

if ! python3 -c 'import simple_salesforce, pytest' 2>/dev/null; then
  echo "setup: installing the Python test clients"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q simple-salesforce==1.12.10 pytest==9.2.0
fi
if [ ! -d sfsim/clients/node/node_modules/jsforce ]; then
  echo "setup: installing the Node test clients"
  (cd sfsim/clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
