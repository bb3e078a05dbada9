#!/usr/bin/env bash
# Reproduces every number in BENCHMARKS.md: builds, generates and imports the data set,
# times evaluation runs (and, on a copy of the database, a night on which every
# customer's points expire), serves it, runs each HTTP workload with oha and its floor
# (the `{ __typename }` query through the same server, and pgbench running the equivalent
# SQL), the same query shapes through PostGraphile v4 on the same database, back to back,
# the segment count and the subscription fan-out, and writes the table to
# bench/results/report.md; then bench/campaigns.sh (campaign simulations over a quarter,
# a recording with a campaign firing) writes bench/results/campaigns.txt.
#
# Needs Postgres at 127.0.0.1:5432 (trust auth, user postgres), pgbench, and node with
# npm (for PostGraphile, installed into bench/postgraphile with `npm ci` when missing);
# installs oha with cargo when it is missing. Sizes and durations can be changed, e.g.
#   CUSTOMERS=100000 INTERACTIONS=1000000 DURATION=10s bench/run.sh
# and REUSE_DATA=1 keeps the database and the import and evaluation timings of the last
# run, to measure the workloads again after a change; DATA_ONLY=1 stops after the data
# set, its evaluation runs and the expiry night (a schema change can then be migrated
# onto it before REUSE_DATA=1 measures the workloads), and REUSE_DATA=1 EXPIRY_NIGHT=1
# times the expiry night again.
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-1000000}
INTERACTIONS=${INTERACTIONS:-10000000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
CONNECTIONS=${CONNECTIONS:-32}
SUBSCRIBERS=${SUBSCRIBERS:-10000}
PG=postgres://postgres@127.0.0.1:5432
DB=tierwise_bench
ADDR=127.0.0.1:8100
URL=http://$ADDR/graphql
PEER_ADDR=127.0.0.1:8101
PEER_URL=http://$PEER_ADDR/graphql
# "lots": points come as purchase lots that expire (the older data sets had balances).
DATA=bench/data/names-lots-$CUSTOMERS-$INTERACTIONS
OUT=bench/results
# Both servers talk to Postgres without TLS, as PostGraphile (node-postgres) does by
# default: on this machine, TLS to the local database cost a quarter of a request's CPU.
export DATABASE_URL="$PG/$DB?sslmode=disable"
export JWT_SECRET=${JWT_SECRET:-tierwise-bench-secret-not-for-production}
export RUST_LOG=${RUST_LOG:-warn}
REUSE_DATA=${REUSE_DATA:-}
DATA_ONLY=${DATA_ONLY:-}
EXPIRY_NIGHT=${EXPIRY_NIGHT:-}
mkdir -p "$OUT"
[ -n "$DATA_ONLY" ] || rm -f "$OUT"/*.json "$OUT"/*.pgbench "$OUT"/*.response "$OUT"/server.log \
  "$OUT"/postgraphile.log "$OUT"/fanout.log "$OUT"/segment-count.log
[ -n "$REUSE_DATA" ] || rm -f "$OUT"/timings.txt "$OUT"/import.log "$OUT"/evaluation-*.log "$OUT"/expiry-night.log

say() { printf '\n== %s\n' "$*" >&2; }
timed() { # timed NAME COMMAND…: runs it, appends "NAME seconds" to timings.txt
  local name=$1; shift
  local started; started=$(date +%s.%N)
  "$@"
  echo "$name $(echo "$(date +%s.%N) - $started" | bc)" >>"$OUT/timings.txt"
}

say "building (release)"
cargo build --release -q -p tierwise -p tierwise-bench
BIN=target/release
command -v oha >/dev/null || cargo install oha --locked
command -v pgbench >/dev/null || { echo "pgbench is missing (Debian: postgresql-client)" >&2; exit 1; }
command -v npm >/dev/null || { echo "node and npm are missing (for PostGraphile)" >&2; exit 1; }
[ -x bench/postgraphile/node_modules/.bin/postgraphile ] || (cd bench/postgraphile && npm ci --no-audit --no-fund)

say "machine"
{
  echo "cpu: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "postgres: $(psql "$PG/postgres" -Atc 'SHOW server_version')"
  echo "oha: $(oha --version)"
  echo "postgraphile: $(node bench/postgraphile/node_modules/.bin/postgraphile --version)"
  echo "commit: $(git rev-parse --short HEAD)"
} | tee "$OUT/machine.txt"

if [ -z "$REUSE_DATA" ]; then
  say "data: $CUSTOMERS customers, about $INTERACTIONS interactions"
  if [ ! -f "$DATA/points.csv" ]; then
    $BIN/tierwise-bench generate --dir "$DATA" --customers "$CUSTOMERS" --interactions "$INTERACTIONS"
  fi
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  $BIN/tierwise migrate >/dev/null
  timed import $BIN/tierwise import --quiet --customers "$DATA/customers.csv" \
    --interactions "$DATA/interactions.csv" --points "$DATA/points.csv" | tee "$OUT/import.log"
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE"

  say "evaluation runs: the first after the import, then the steady state"
  timed evaluation_first $BIN/tierwise evaluate --quiet | tee "$OUT/evaluation-first.log"
  timed evaluation_steady $BIN/tierwise evaluate --quiet | tee "$OUT/evaluation-steady.log"
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE"
fi

# Kept data may predate a migration: migrate it first, so that the night's copy is not
# timed migrating.
[ -z "$REUSE_DATA" ] || $BIN/tierwise migrate >/dev/null
if [ -z "$REUSE_DATA" ] || [ -n "$EXPIRY_NIGHT" ]; then
  # Programs that clear points at the end of the year expire every customer's points on
  # one night. On a copy (the workloads below keep the data as it is): every lot that
  # has not expired yet is dated to expire tonight, and an evaluation run as of tonight
  # writes them all off. An evaluation run cannot be dated in the future, so the lots
  # move to the night rather than the night to the lots. The run after it (nothing left
  # to expire) is the same run without the expiry, for comparison.
  say "expiry night, on a copy: every customer's points expire in one evaluation run"
  NIGHT_DB=${DB}_expiry_night
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $NIGHT_DB WITH (FORCE)" -c "CREATE DATABASE $NIGHT_DB TEMPLATE $DB"
  NIGHT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # The program clears points at the end of the year (END_OF_YEAR): tonight is that night.
  psql "$PG/$NIGHT_DB" -qc "UPDATE points_entry SET expires_at = '$NIGHT' WHERE delta > 0 AND expires_at > '$NIGHT'" \
    -c "UPDATE program_settings SET points_expiry_policy = 'END_OF_YEAR'" \
    -c "VACUUM ANALYZE"
  psql "$PG/$NIGHT_DB" -Atc "SELECT 'expiring tonight: ' || count(*) || ' customers holding ' || coalesce(sum(points_balance), 0)
    || ' points' FROM customer WHERE points_balance > 0" | tee "$OUT/expiry-night.log"
  DATABASE_URL="$PG/$NIGHT_DB?sslmode=disable" timed expiry_night $BIN/tierwise evaluate --quiet --as-of "$NIGHT" | tee -a "$OUT/expiry-night.log"
  psql "$PG/$NIGHT_DB" -Atc "SELECT 'expired: ' || count(*) || ' EXPIRE entries, ' || coalesce(-sum(delta), 0) || ' points; '
    || (SELECT count(*) FROM customer WHERE points_balance > 0) || ' customers still hold points'
    FROM points_entry WHERE kind = 'EXPIRE' AND created_at >= '$NIGHT'" | tee -a "$OUT/expiry-night.log"
  DATABASE_URL="$PG/$NIGHT_DB?sslmode=disable" timed expiry_next_night $BIN/tierwise evaluate --quiet | tee -a "$OUT/expiry-night.log"
  psql "$PG/postgres" -qc "DROP DATABASE $NIGHT_DB WITH (FORCE)"
fi
[ -z "$DATA_ONLY" ] || exit 0

say "serving"
# The fan-out holds 10,000 sockets with one staff token, and each workload sends
# thousands of requests a second with one token: past the per-caller, connection and
# rate defaults, which protect a server on the open internet.
LISTEN_ADDR=$ADDR MAX_CONNECTIONS=20000 MAX_SUBSCRIPTIONS_PER_CALLER=20000 MAX_SOCKETS_PER_CALLER=20000 \
  RATE_LIMIT_ADMIN=0 RATE_LIMIT_STAFF=0 RATE_LIMIT_PARTNER=0 RATE_LIMIT_CUSTOMER=0 \
  env -u EVALUATION_SCHEDULE $BIN/tierwise serve >"$OUT/server.log" 2>&1 &
SERVER=$!
# The peer: PostGraphile v4 on the same database, the same pool size, no auth (it
# serves every table to anyone: the comparison is with a server that checks nothing),
# no mutations, no schema watching, no query log.
# (Without JWT_SECRET, which it would otherwise read from the environment.)
NODE_ENV=production env -u JWT_SECRET node bench/postgraphile/node_modules/.bin/postgraphile \
  --connection "$DATABASE_URL" --schema public --host "${PEER_ADDR%:*}" --port "${PEER_ADDR#*:}" \
  --append-plugins @graphile-contrib/pg-simplify-inflector --max-pool-size 32 \
  --disable-default-mutations --disable-graphiql --disable-query-log >"$OUT/postgraphile.log" 2>&1 &
PEER=$!
trap 'kill $SERVER $PEER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.2; done
for _ in $(seq 300); do
  curl -sf "$PEER_URL" -H 'content-type: application/json' -d '{"query":"{ __typename }"}' >/dev/null && break
  sleep 0.2
done

token() { $BIN/tierwise token --ttl 2h "$@"; }
ADMIN=$(token --role admin)
STAFF=$(token --role staff)
gql() { # gql TOKEN JSON-BODY: the response body (no token: PostGraphile's)
  if [ -n "$1" ]; then
    curl -sf "$URL" -H 'content-type: application/json' -H "authorization: Bearer $1" -d "$2"
  else
    curl -sf "$PEER_URL" -H 'content-type: application/json' -d "$2"
  fi
}
sql() { psql "$DATABASE_URL" -Atc "$1"; }

# The "my account" customer: the one with the longest ledger, a real heavy user.
CUSTOMER=$(sql "SELECT customer_id FROM points_entry GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1")
ME=$(token --role customer --customer-id "$CUSTOMER")
REWARD=$(gql "$ADMIN" '{"query":"mutation { createReward(input: { name: \"Bench coffee\", costPoints: 1 }) { id } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["createReward"]["id"])')
REWARD_ROW=$(sql "SELECT id FROM reward WHERE name = 'Bench coffee' ORDER BY created_at DESC LIMIT 1")
SEGMENT=$(gql "$STAFF" '{"query":"mutation { createSegment(input: { name: \"VIPs in Shanghai gone quiet '"$(date +%s)"'\", kind: DYNAMIC, rule: { all: [ { field: \"tier\", op: \"eq\", value: \"vip\" }, { field: \"region\", op: \"eq\", value: \"Shanghai\" }, { field: \"recencyDays\", op: \"gt\", value: 90 } ] } }) { id } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["createSegment"]["id"])')

# Request bodies: one per line for oha -Z, so that writes spread over many customers.
MY_ACCOUNT='{"query":"{ viewer { customer { id name tier { key name } pointsBalance pointsLedger(first: 10) { edges { node { delta balanceAfter kind reason expiresAt createdAt } } } tierHistory(first: 5) { edges { node { reason score changedAt from { key } to { key } } } } } } }"}'
CONSOLE_PAGE='{"query":"{ customers(first: 50, orderBy: { field: LIFETIME_SPEND, direction: DESC }) { pageInfo { hasNextPage endCursor } edges { node { id name email region lifecycleStage score pointsBalance tags tier { key name } metrics { lifetimeSpend lastPurchaseAt rfm { segment } abcClass } } } } }"}'
SEGMENT_COUNT="{\"query\":\"{ segment(id: \\\"$SEGMENT\\\") { memberCount } }\"}"
VIP=$(sql "SELECT id FROM tier WHERE key = 'vip'")
TIER_PAGE='{"query":"{ customers(first: 50, filter: { tierKeys: [\"vip\"] }, orderBy: { field: SCORE, direction: DESC }) { totalCount edges { node { id name score tier { key } tierHistory(first: 3) { edges { node { reason changedAt from { key } to { key } } } } } } } }"}'
# Search as a console's type-ahead sends it: names are "Surname Given N" (Zhang, Zhao,
# Zhou, Zhu… start with "zh"), e-mails "surname.givenN@example.com", external refs "BENCH-N".
SEARCH_2='{"query":"{ customers(first: 20, filter: { search: \"zh\" }) { totalCount edges { node { id name } } } }"}'
SEARCH_3='{"query":"{ customers(first: 20, filter: { search: \"ang\" }) { totalCount edges { node { id name } } } }"}'
# The same shapes for PostGraphile (pg-simplify-inflector names; no auth, so "my account"
# names its customer, and the tier filter is the vip tier's id, which Tierwise looks up
# from its key). Orders end on the id, as Tierwise's keyset pages do; erased customers
# are left out as Tierwise leaves them out.
PEER_MY_ACCOUNT='{"query":"{ customer(id: \"'$CUSTOMER'\") { id name tier { key name } pointsBalance pointsEntries(first: 10, orderBy: [CREATED_AT_DESC, ID_DESC]) { edges { node { delta balanceAfter kind reason expiresAt createdAt } } } tierChanges(first: 5, orderBy: [CHANGED_AT_DESC, ID_DESC]) { edges { node { reason score changedAt fromTier { key } toTier { key } } } } } }"}'
PEER_CONSOLE_PAGE='{"query":"{ customers(first: 50, condition: { erasedAt: null }, orderBy: [LIFETIME_SPEND_E4_DESC, ID_DESC]) { pageInfo { hasNextPage endCursor } edges { node { id name email region lifecycleStage score pointsBalance customerTags { nodes { tag } } tier { key name } lifetimeSpendE4 lastPurchaseAt rfmSegment abcClass } } } }"}'
PEER_TIER_PAGE='{"query":"{ customers(first: 50, condition: { tierId: \"'$VIP'\", erasedAt: null }, orderBy: [SCORE_DESC, ID_DESC]) { totalCount edges { node { id name score tier { key } tierChanges(first: 3, orderBy: [CHANGED_AT_DESC, ID_DESC]) { edges { node { reason changedAt fromTier { key } toTier { key } } } } } } } }"}'
python3 - "$CUSTOMERS" "$REWARD" "$OUT" <<'EOF'
import json, random, sys
customers, reward, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(7)
record = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { interaction { id } customer { pointsBalance tier { key } } } }"
with open(f"{out}/record.bodies", "w") as f:
    for _ in range(20000):
        f.write(json.dumps({"query": record, "variables": {"input": {
            "customerExternalRef": f"BENCH-{random.randint(1, customers)}",
            "kind": "PURCHASE", "amount": f"{random.randint(10, 500)}.00"}}}) + "\n")
# recordInteractions: 1,000 purchases a body, each body's customers distinct, and the
# bodies disjoint (while there are customers enough), so that two batches in flight
# never wait on each other's rows.
batch = "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { interaction { id } customer { pointsBalance tier { key } } } }"
order = list(range(1, customers + 1))
random.shuffle(order)
with open(f"{out}/batch.bodies", "w") as f:
    for b in range(max(1, min(100, customers // 1000))):
        chunk = order[b * 1000:(b + 1) * 1000]
        f.write(json.dumps({"query": batch, "variables": {"inputs": [
            {"customerExternalRef": f"BENCH-{n}", "kind": "PURCHASE",
             "amount": f"{random.randint(10, 500)}.00"} for n in chunk]}}) + "\n")
EOF
# Redemptions need points: the customers who have the most.
sql "SELECT id FROM customer WHERE points_balance >= 100 ORDER BY points_balance DESC LIMIT 5000" |
  python3 -c '
import json, sys
reward = sys.argv[1]
redeem = "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { id pointsSpent entry { balanceAfter } } }"
for line in sys.stdin:
    print(json.dumps({"query": redeem, "variables": {"input": {"customerId": line.strip(), "rewardId": reward}}}))
' "$REWARD" >"$OUT/redeem.bodies"

check() { # check TOKEN BODY: the workload's request must succeed, or its numbers mean nothing
  local response url=$PEER_URL auth=()
  if [ -n "$1" ]; then url=$URL; auth=(-H "authorization: Bearer $1"); fi
  response=$(curl -s --fail-with-body "$url" -H 'content-type: application/json' "${auth[@]}" -d "$2") ||
    { echo "the workload fails ($url): ${response:0:2000}" >&2; exit 1; }
  if [[ $response == *'"errors"'* || $response != *'"data"'* ]]; then
    echo "the workload fails ($url): ${response:0:2000}" >&2; exit 1
  fi
}

oha_run() { # oha_run NAME TOKEN CONNECTIONS oha-args…: through Tierwise (no token: PostGraphile)
  local name=$1 auth=$2 connections=$3; shift 3
  case $1 in
    -d) check "$auth" "$2" ;;
    -Z) check "$auth" "$(head -1 "$2")" ;;
  esac
  local common=(--no-tui -m POST -H 'content-type: application/json') url=$PEER_URL
  if [ -n "$auth" ]; then common+=(-H "authorization: Bearer $auth"); url=$URL; fi
  oha "${common[@]}" -c "$connections" -z "$WARMUP" --output-format quiet "$@" "$url" || true
  oha "${common[@]}" -c "$connections" -z "$DURATION" --output-format json -o "$OUT/$name.json" "$@" "$url"
}

say "HTTP workloads ($CONNECTIONS connections, $DURATION each after $WARMUP of warm-up), each shape through Tierwise then PostGraphile"
oha_run typename "$STAFF" "$CONNECTIONS" -d '{"query":"{ __typename }"}'
oha_run peer_typename "" "$CONNECTIONS" -d '{"query":"{ __typename }"}'
oha_run my_account "$ME" "$CONNECTIONS" -d "$MY_ACCOUNT"
oha_run peer_my_account "" "$CONNECTIONS" -d "$PEER_MY_ACCOUNT"
oha_run console_page "$STAFF" "$CONNECTIONS" -d "$CONSOLE_PAGE"
oha_run peer_console_page "" "$CONNECTIONS" -d "$PEER_CONSOLE_PAGE"
oha_run tier_page "$STAFF" "$CONNECTIONS" -d "$TIER_PAGE"
oha_run peer_tier_page "" "$CONNECTIONS" -d "$PEER_TIER_PAGE"
kill $PEER 2>/dev/null || true
say "search (8 connections), writes"
oha_run search_2 "$STAFF" 8 -d "$SEARCH_2"
oha_run search_3 "$STAFF" 8 -d "$SEARCH_3"
gql "$STAFF" "$SEARCH_2" >"$OUT/search_2.response"
gql "$STAFF" "$SEARCH_3" >"$OUT/search_3.response"
oha_run record "$STAFF" "$CONNECTIONS" -Z "$OUT/record.bodies"
oha_run redeem "$STAFF" "$CONNECTIONS" -Z "$OUT/redeem.bodies"
# A batch takes seconds: the requests in flight at the deadline are waited for.
oha_run batch "$STAFF" 2 -Z "$OUT/batch.bodies" -w
oha_run segment_count "$STAFF" 4 -d "$SEGMENT_COUNT"

say "database floors (pgbench, the same SQL by hand)"
pg_run() { # pg_run NAME SCRIPT CONNECTIONS [pgbench args…]
  local name=$1 script=$2 connections=$3; shift 3
  local seconds=${DURATION%s}
  pgbench -n -M prepared -c "$connections" -j 2 -T "${WARMUP%s}" -f "$script" "$@" "$DB" -h 127.0.0.1 -U postgres >/dev/null 2>&1 || true
  rm -f "$OUT"/pgbench_log.*
  pgbench -n -M prepared -c "$connections" -j 2 -T "$seconds" -f "$script" -l --log-prefix="$OUT/pgbench_log" \
    "$@" "$DB" -h 127.0.0.1 -U postgres >"$OUT/$name.pgbench" 2>&1
  cat "$OUT"/pgbench_log.* | awk '{print $3}' | sort -n >"$OUT/$name.latencies"
  rm -f "$OUT"/pgbench_log.*
}
pg_run my_account_sql bench/sql/my_account.sql "$CONNECTIONS" -D cid="$CUSTOMER"
pg_run console_page_sql bench/sql/console_page.sql "$CONNECTIONS"
pg_run record_sql bench/sql/record.sql "$CONNECTIONS" -D customers="$CUSTOMERS"
pg_run redeem_sql bench/sql/redeem.sql "$CONNECTIONS" -D customers="$CUSTOMERS" -D reward="$REWARD_ROW"

say "segment count, in process (median of 7)"
$BIN/tierwise-bench segment-count | tee "$OUT/segment-count.log"

say "subscription fan-out to $SUBSCRIBERS"
$BIN/tierwise-bench fanout --url "$URL" --subscribers "$SUBSCRIBERS" --server-pid "$SERVER" | tee "$OUT/fanout.log"

python3 bench/report.py "$OUT" | tee "$OUT/report.md"

# Campaigns on the same data (their own server, after this one stops).
kill $SERVER $PEER 2>/dev/null || true
wait $SERVER $PEER 2>/dev/null || true
bench/campaigns.sh
