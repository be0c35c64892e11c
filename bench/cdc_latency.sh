#!/usr/bin/env bash
# Prints figures for Change Data Capture: the worker streaming Account,
# Contact and Opportunity from sfsim's Pub/Sub API with polling an hour
# apart.
#  1. latency from an edit made in Salesforce (through its REST API) until
#     it is in the copy, over EDITS edits at random moments: p50, p99, max,
#     beside what polling costs at the same budget (bench/poll_cost.sh);
#  2. counted API requests while idle, per hour.
# Usage: bench/cdc_latency.sh [EDITS [IDLE_SECONDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
edits=${1:-200}
idle=${2:-120}
dir=/tmp/pg_salesforce-bench-cdc

bench_cluster "$dir" "shared_preload_libraries = 'pg_salesforce'" "salesforce.sync_naptime = 1"
start_sfsim target/release/sfsim --seed demo --daily-limit 1000000000 --pubsub-listen 127.0.0.1:0
setup_org bench account
sql -q -c "ALTER SERVER org OPTIONS (ADD pubsub_url '$SFSIM_PUBSUB_URL')"
curl -sf -X POST "$SFSIM_URL/__sim/cdc" -H 'Content-Type: application/json' \
  -d '{"objects": ["Account", "Contact", "Opportunity"]}' >/dev/null
for object in Account Contact Opportunity; do
  sql -q -c "SET client_min_messages = warning" \
    -c "SELECT salesforce.sync_enable('org', '$object', every => '1 hour', options => '{\"cdc\": true}')" >/dev/null
done
for _ in $(seq 600); do
  [ "$(sql -tA -c "SELECT status = 'streaming' AND (SELECT bool_and(next_due > now() + interval '30 minutes') FROM salesforce.syncs) FROM salesforce.streams")" = t ] && break
  sleep 0.5
done

token=$(curl -sf "$SFSIM_URL/services/oauth2/token" -d grant_type=password -d client_id=sfsim-client-id \
  -d client_secret=sfsim-client-secret -d username=admin@sfsim.example -d password=sfsim-passwordSFSIMTOKEN |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
ids=$(sql -tA -c "SELECT string_agg(id, ' ') FROM (SELECT id FROM org.account ORDER BY id LIMIT 20) x")

echo "1. edit-to-copy latency, $edits edits through REST"
python3 - "$SFSIM_URL" "$token" "$PGHOST" "$PGPORT" "$edits" $ids <<'PY'
import json, random, subprocess, sys, time, urllib.request
url, token, host, port, edits, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6:]
psql = subprocess.Popen(["sudo", "-u", "postgres", "psql", "-X", "-qtA", "-h", host, "-p", port, "-U", "postgres"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
def copy_has(id, value):
    psql.stdin.write(f"SELECT description = '{value}' FROM org.account WHERE id = '{id}';\n")
    return psql.stdout.readline().strip() == "t"
latencies = []
for n in range(edits):
    time.sleep(random.uniform(0, 0.3))
    id, value = random.choice(ids), f"edit {n} {random.random()}"
    req = urllib.request.Request(f"{url}/services/data/v62.0/sobjects/Account/{id}", method="PATCH",
                                 data=json.dumps({"Description": value}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    start = time.monotonic()
    urllib.request.urlopen(req).read()
    while not copy_has(id, value):
        time.sleep(0.005)
    latencies.append(time.monotonic() - start)
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
print(f"   p50 {q(0.50):.3f} s, p99 {q(0.99):.3f} s, max {latencies[-1]:.3f} s, mean {sum(latencies)/len(latencies):.3f} s")
print(f"   polling 3 objects at 100,000 requests a day: a cycle every {86400 / 100000:.2f} s (one composite call), median 1.45 s for 10 objects (bench/poll_cost.sh)")
PY

echo "2. counted API requests while idle, streaming, $idle s"
counted() { curl -s "$SFSIM_URL/__sim/requests" | python3 -c 'import json,sys; print(sum(r["counted"] for r in json.load(sys.stdin)["requests"]))'; }
c0=$(counted)
sleep "$idle"
c1=$(counted)
python3 -c "print(f'   {$c1 - $c0} requests in $idle s: {($c1 - $c0) * 3600 / $idle:.1f} an hour from the stream, plus the hourly safety-net poll (1 composite call for 3 objects)')"
