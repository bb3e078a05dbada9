#!/usr/bin/env bash
# Webhooks under an evaluation run's burst (issue 18): the tier changes of one run (the
# first after an import) delivered to 3 endpoints. Reports the run's duration without
# webhooks, with webhooks delivered while it runs, and with webhooks delivered after it
# (the server stopped during the run: what the run itself does), the deliveries'
# throughput and the time until the last is delivered. Each variant runs on its own copy
# of the imported database, with a server beside the CLI's run (the server fans out and
# dispatches; the run only writes).
#   bench/webhooks.sh                  # 40,000 customers, 400,000 interactions
#   CUSTOMERS=10000 INTERACTIONS=100000 bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-40000}
INTERACTIONS=${INTERACTIONS:-400000}
PG=postgres://postgres@127.0.0.1:5432
DB=tierwise_webhooks_bench
ADDR=127.0.0.1:8200
PORTS=(8211 8212 8213)
OUT=bench/results
DATA=bench/data/names-lots-$CUSTOMERS-$INTERACTIONS
export JWT_SECRET=${JWT_SECRET:-tierwise-bench-secret-not-for-production}
export RUST_LOG=${RUST_LOG:-warn}
export WEBHOOK_ALLOW_HTTP=true WEBHOOK_ALLOW_PRIVATE=true
mkdir -p "$OUT"
REPORT=$OUT/webhooks.txt
: >"$REPORT"

say() { printf '\n== %s\n' "$*" >&2; }
seconds() { echo "$(date +%s.%N)"; }

say "building (release)"
cargo build --release -q -p tierwise -p tierwise-bench
BIN=target/release

say "data: $CUSTOMERS customers, about $INTERACTIONS interactions"
[ -f "$DATA/points.csv" ] || $BIN/tierwise-bench generate --dir "$DATA" --customers "$CUSTOMERS" --interactions "$INTERACTIONS"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_template WITH (FORCE)" -c "CREATE DATABASE ${DB}_template"
DATABASE_URL="$PG/${DB}_template?sslmode=disable" $BIN/tierwise migrate >/dev/null
DATABASE_URL="$PG/${DB}_template?sslmode=disable" $BIN/tierwise import --quiet --customers "$DATA/customers.csv" \
  --interactions "$DATA/interactions.csv" --points "$DATA/points.csv" >/dev/null
psql "$PG/${DB}_template" -qc "VACUUM ANALYZE"

# The receivers stand for partners' machines: niced, so that they do not take the
# cores the run is measured on.
nice -n 19 python3 bench/webhook_receiver.py "${PORTS[@]}" &
RECEIVERS=$!
SERVER=
trap 'kill $RECEIVERS $SERVER 2>/dev/null || true' EXIT

start_server() {
  LISTEN_ADDR=$ADDR RATE_LIMIT_ADMIN=0 env -u EVALUATION_SCHEDULE $BIN/tierwise serve >>"$OUT/webhooks-server-$variant.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.2; done
}

for variant in without with after; do
  say "evaluation run, $variant webhooks"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_$variant WITH (FORCE)" -c "CREATE DATABASE ${DB}_$variant TEMPLATE ${DB}_template"
  export DATABASE_URL="$PG/${DB}_$variant?sslmode=disable"
  : >"$OUT/webhooks-server-$variant.log"
  start_server
  ADMIN=$($BIN/tierwise token --role admin --ttl 1h)
  if [ "$variant" != without ]; then
    for port in "${PORTS[@]}"; do
      curl -sf "http://$ADDR/graphql" -H 'content-type: application/json' -H "authorization: Bearer $ADMIN" \
        -d "{\"query\":\"mutation { createWebhookEndpoint(input: { url: \\\"http://127.0.0.1:$port/hook\\\", events: [\\\"customer.tier_changed\\\"] }) { endpoint { id } } }\"}" >/dev/null
    done
  fi
  if [ "$variant" = after ]; then kill $SERVER; wait $SERVER 2>/dev/null || true; fi
  started=$(seconds)
  $BIN/tierwise evaluate --quiet >"$OUT/webhooks-evaluation-$variant.log"
  finished=$(seconds)
  if [ "$variant" = after ]; then start_server; fi
  changes=$(psql "$PG/${DB}_$variant" -Atc "SELECT count(*) FROM tier_change WHERE reason = 'EVALUATION'")
  run=$(echo "$finished - $started" | bc)
  echo "$variant webhooks: the run took ${run} s and changed $changes tiers" | tee -a "$REPORT"
  if [ "$variant" != without ]; then
    expected=$((changes * ${#PORTS[@]}))
    for _ in $(seq 1200); do
      done_count=$(psql "$PG/${DB}_$variant" -Atc "SELECT count(*) FROM webhook_delivery WHERE status = 'SUCCEEDED' AND event_type = 'customer.tier_changed'")
      [ "$done_count" -ge "$expected" ] && break
      sleep 0.5
    done
    psql "$PG/${DB}_$variant" -Atc "SELECT 'deliveries: ' || count(*) || ' succeeded, ' ||
        (SELECT count(*) FROM webhook_delivery WHERE status <> 'SUCCEEDED') || ' not; attempts per delivery: ' ||
        round(avg(attempts), 3)
      FROM webhook_delivery WHERE status = 'SUCCEEDED'" | tee -a "$REPORT"
    last=$(psql "$PG/${DB}_$variant" -Atc "SELECT extract(epoch FROM max(delivered_at)) FROM webhook_delivery")
    first=$(psql "$PG/${DB}_$variant" -Atc "SELECT extract(epoch FROM min(created_at)) FROM webhook_delivery")
    echo "the last delivered $(echo "$last - $started" | bc) s after the run started ($(echo "$last - $finished" | bc) s after it finished);" \
      "$(echo "$expected / ($last - $first)" | bc) deliveries/s from the first made to the last delivered" | tee -a "$REPORT"
  fi
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=
done
for variant in without with after template; do psql "$PG/postgres" -qc "DROP DATABASE ${DB}_$variant WITH (FORCE)"; done
say "report"
cat "$REPORT"
