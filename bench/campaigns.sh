#!/usr/bin/env bash
# Campaigns at scale, on the bench's data set (run `DATA_ONLY=1 bench/run.sh` first, or
# after `bench/run.sh`): how long `simulateCampaign` takes to replay a quarter of a
# million customers' history, per trigger shape, and what an active campaign costs a
# recording (`recordInteraction` with and without one, measured with oha).
#
#   bench/campaigns.sh                 # results in bench/results/campaigns.txt
#
# Each simulation is timed three times, end to end through HTTP (the server, Postgres
# and curl share the machine); the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

PG=postgres://postgres@127.0.0.1:5432
DB=${DB:-tierwise_bench}
export DATABASE_URL="$PG/$DB?sslmode=disable"
export JWT_SECRET=${JWT_SECRET:-tierwise-bench-secret-not-for-production}
ADDR=127.0.0.1:8091
URL="http://$ADDR/graphql"
OUT=bench/results
BIN=target/release
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
mkdir -p "$OUT"
REPORT="$OUT/campaigns.txt"

say() { printf '\n== %s\n' "$*" >&2; }

say "building (release)"
cargo build --release -q -p tierwise
command -v oha >/dev/null || cargo install oha --locked
$BIN/tierwise migrate >/dev/null

say "serving"
LISTEN_ADDR=$ADDR RATE_LIMIT_ADMIN=0 RATE_LIMIT_STAFF=0 RATE_LIMIT_PARTNER=0 \
  env -u EVALUATION_SCHEDULE $BIN/tierwise serve >"$OUT/campaigns-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://$ADDR/readyz" >/dev/null || { echo "the server did not start: see $OUT/campaigns-server.log" >&2; exit 1; }
ADMIN=$($BIN/tierwise token --ttl 2h --role admin)
gql() { curl -sf "$URL" -H 'content-type: application/json' -H "authorization: Bearer $ADMIN" -d "$1"; }
sql() { psql "$DATABASE_URL" -Atc "$1"; }

# The quarter that ends with the newest recorded interaction.
TO=$(sql "SELECT to_char(max(occurred_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM interaction")
FROM=$(sql "SELECT to_char((max(occurred_at) - interval '91 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM interaction")
{
  echo "commit: $(git rev-parse --short HEAD)"
  echo "customers: $(sql 'SELECT count(*) FROM customer'), interactions: $(sql 'SELECT count(*) FROM interaction')"
  echo "quarter: $FROM .. $TO, $(sql "SELECT count(*) FROM interaction WHERE occurred_at >= '$FROM' AND occurred_at < '$TO'") interactions in it"
} | tee "$REPORT"

simulate() { # simulate NAME INPUT: the median of three runs, and what it answered
  local name=$1 input=$2 body times=() answer
  body=$(printf '{"query":"query($input: CampaignInput!, $from: DateTime!, $to: DateTime!) { simulateCampaign(input: $input, from: $from, to: $to) { timesFired customersReached pointsAwarded budgetExhaustedAt byDay { date } } }","variables":{"input":%s,"from":"%s","to":"%s"}}' "$input" "$FROM" "$TO")
  for _ in 1 2 3; do
    local started; started=$(date +%s.%N)
    answer=$(gql "$body")
    times+=("$(echo "$(date +%s.%N) - $started" | bc)")
  done
  echo "$answer" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "errors" not in d, d' >&2
  local median; median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
  echo "$answer" | python3 -c '
import json, sys
name, median = sys.argv[1], float(sys.argv[2])
s = json.load(sys.stdin)["data"]["simulateCampaign"]
print("{}: {:.2f} s (median of 3): fired {}, reached {}, {} points, {} days, budget exhausted {}".format(
    name, median, s["timesFired"], s["customersReached"], s["pointsAwarded"], len(s["byDay"]),
    s["budgetExhaustedAt"]))
' "$name" "$median" | tee -a "$REPORT"
}

say "simulations over a quarter"
simulate "member day x2 (Fridays, purchases)" \
  '{"name":"b","trigger":{"kind":"INTERACTION","interactionKinds":["PURCHASE"],"daysOfWeek":[5]},"actions":[{"kind":"MULTIPLY_POINTS","multiplier":2}],"limitPerCustomer":500,"budgetPoints":1000000}'
simulate "member day x2, Shanghai only (a condition)" \
  '{"name":"b","trigger":{"kind":"INTERACTION","interactionKinds":["PURCHASE"],"daysOfWeek":[5]},"condition":{"field":"region","op":"eq","value":"Shanghai"},"actions":[{"kind":"MULTIPLY_POINTS","multiplier":2}],"limitPerCustomer":500,"budgetPoints":1000000}'
simulate "every interaction, 5 points" \
  '{"name":"b","trigger":{"kind":"INTERACTION"},"actions":[{"kind":"AWARD_POINTS","points":5}]}'
simulate "VIP welcome (tier history)" \
  '{"name":"b","trigger":{"kind":"TIER_CHANGED","toTierKey":"vip"},"actions":[{"kind":"AWARD_POINTS","points":300}]}'
simulate "birthday gift" \
  '{"name":"b","trigger":{"kind":"BIRTHDAY"},"actions":[{"kind":"AWARD_POINTS","points":100}]}'

say "recordInteraction, without and with an active member-day campaign"
python3 - "$OUT/campaigns-record.body" <<'EOF'
import json, subprocess, sys
ids = subprocess.run(["psql", __import__("os").environ["DATABASE_URL"], "-Atc",
                      "SELECT id FROM customer WHERE erased_at IS NULL ORDER BY random() LIMIT 5000"],
                     capture_output=True, text=True, check=True).stdout.split()
query = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }"
with open(sys.argv[1], "w") as out:
    for customer in ids:
        out.write(json.dumps({"query": query, "variables": {"input": {
            "customerId": customer, "kind": "PURCHASE", "amount": "12.50"}}}) + "\n")
EOF
record() { # record NAME: requests/s and p99 of recordInteraction
  local file; file="$OUT/campaigns-$(echo "$1" | tr -c 'a-z0-9' '-').json"
  local common=(--no-tui -m POST -H 'content-type: application/json' -H "authorization: Bearer $ADMIN"
    -c "$CONNECTIONS" -Z "$OUT/campaigns-record.body")
  oha "${common[@]}" -z 5s --output-format quiet "$URL" || true
  oha "${common[@]}" -z "$DURATION" --output-format json -o "$file" "$URL"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("{}: {:.0f} req/s, p99 {:.1f} ms, {}".format(sys.argv[2], r["summary"]["requestsPerSec"],
      r["latencyPercentiles"]["p99"] * 1000, r["statusCodeDistribution"]))
 ' "$file" "recordInteraction, $1" | tee -a "$REPORT"
}
record "no campaign"
WEEKDAY=$(date -u +%u)
with_campaign() { # with_campaign NAME LIMITS: records with one active member day firing every purchase
  local id
  id=$(gql '{"query":"mutation($input: CampaignInput!) { createCampaign(input: $input) { id } }","variables":{"input":{"name":"bench '"$1"'","trigger":{"kind":"INTERACTION","interactionKinds":["PURCHASE"],"daysOfWeek":['"$WEEKDAY"']},"actions":[{"kind":"MULTIPLY_POINTS","multiplier":2}]'"$2"'}}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["createCampaign"]["id"])')
  gql '{"query":"mutation { activateCampaign(id: \"'"$id"'\") { status } }"}' >/dev/null
  record "$1"
  gql '{"query":"mutation { endCampaign(id: \"'"$id"'\") { status } }"}' >/dev/null
}
with_campaign "a member day (x2, every purchase fires it)" ""
# A budget is exact because every firing locks the campaign's row until it commits:
# purchases that fire it queue on that row.
with_campaign "a member day with a per-customer limit and a budget" ',"limitPerCustomer":100000,"budgetPoints":1000000000'
echo "report: $REPORT"
