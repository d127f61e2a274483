#!/usr/bin/env bash
# bench/snapshot.sh: what a record-date snapshot of a token with 1,000,000
# events costs, next to a plain full scan of the same events in the same run,
# and each backend's peak memory.  One command, as root on Debian 12:
# installs what is missing, builds and installs the extension, starts its
# own PostgreSQL 15 cluster and simulator (test/lib.sh), measures, prints the
# report and writes it to bench/results/snapshot.txt, then stops everything.
# About 3 minutes.
#
# Each step runs in a fresh backend, so its VmHWM (peak resident memory, read
# from /proc before the session ends) is its own:
#   scan    sum(amount) over every event of the token (every page read; a
#           bare count(*) would be answered by meta.total)
#   cold    take_snapshot at a mid-history record time, mirror empty: it
#           mirrors every event into dalp_fdw.event_log, then replays
#   warm    take_snapshot at another record time, the mirror current: one
#           incremental read of the API, the replay from the mirror
#   sync    sync_events right after: nothing new, one request
# VmHWM counts the shared buffers a backend touched as well as its own
# memory; shared_buffers is the default 128 MB.
#
# The server lifts the client-side rate limit (bench/run.sh does the same):
# at DALP's default of 10,000 requests a minute, 5,000 pages take 30 s
# whatever else happens, and that is not what is measured.
#
# Environment: SNAPBENCH_PGPORT [54349], SNAPBENCH_SIM_PORT [18940],
# SNAPBENCH_EVENTS [1000000], SNAPBENCH_RESULTS [bench/results/snapshot.txt].
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DALP_PGPORT=${SNAPBENCH_PGPORT:-54349}
# shellcheck source-path=SCRIPTDIR source=../test/lib.sh
source "$BENCH_DIR/../test/lib.sh"

SIM_PORT=${SNAPBENCH_SIM_PORT:-18940}
EVENTS=${SNAPBENCH_EVENTS:-1000000}
RESULTS=${SNAPBENCH_RESULTS:-$BENCH_DIR/results/snapshot.txt}

dalp_install_deps
dalp_build_install
dalp_start_cluster
t0=$SECONDS
dalp_start_sim --port "$SIM_PORT" --big-token-events "$EVENTS"
sim_start_s=$((SECONDS - t0))
url=$DALP_SIM_LAST_URL

dalp_sim_schema bench "$url" "rate_limit_per_minute '6000000'" "tokens, events, holders"
token=$(dalp_psql -tAc "SELECT address FROM bench.tokens WHERE symbol = 'BIG'")
[[ -n $token ]] || dalp_die "the simulator has no BIG token"
# Record times in the middle of the token's history (2026-01-03 to 2026-09-15).
mid='2026-05-15 00:00:00+00'
later='2026-06-15 00:00:00+00'

vmhwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# step NAME SQL: runs SQL (one result line) in a new session; sets
# STEP_MS, STEP_KB (the backend's VmHWM) and STEP_OUT.
step() {
  local name=$1 sql=$2 pid t
  dalp_log "$name"
  coproc STEP { dalp_psql -qtA 2>&1; }
  echo "SELECT pg_backend_pid();" >&"${STEP[1]}"
  read -r pid <&"${STEP[0]}" || dalp_die "$name: the session did not start"
  t=${EPOCHREALTIME/./}
  echo "$sql" >&"${STEP[1]}"
  read -r STEP_OUT <&"${STEP[0]}" || dalp_die "$name: no result"
  STEP_MS=$(((${EPOCHREALTIME/./} - t) / 1000))
  STEP_KB=$(vmhwm "$pid")
  echo '\q' >&"${STEP[1]}"
  wait "$STEP_PID" 2>/dev/null || true
  [[ $STEP_OUT != *ERROR* ]] || dalp_die "$name: $STEP_OUT"
}

report=()
line() { report+=("$(awk -v n="$1" -v ms="$2" -v kb="$3" -v r="$4" 'BEGIN {printf "%-8s %9.1f s %9s kB  %s", n, ms / 1000, kb, r}')"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# the snapshot's own account of itself
describe() {
  dalp_psql -tAc "SELECT events_replayed || ' events replayed, ' || holders || ' holders, reconciled ' || reconciled
                    FROM dalp_fdw.snapshots WHERE id = $1"
}

step idle "SELECT 1;"
idle_kb=$STEP_KB

step scan "SELECT count(*) || ' events, sum ' || sum(amount) FROM bench.events WHERE token_address = '$token';"
scan_ms=$STEP_MS
line scan "$STEP_MS" "$STEP_KB" "$STEP_OUT"
[[ $STEP_OUT == "$EVENTS events,"* ]] || dalp_die "the scan read $STEP_OUT, expected $EVENTS events"

step cold "SELECT dalp_fdw.take_snapshot('bench', '$token', '$mid');"
cold_ms=$STEP_MS
desc=$(describe "$STEP_OUT")
line cold "$STEP_MS" "$STEP_KB" "snapshot $STEP_OUT: $desc"
[[ $desc == *"reconciled true" ]] || dalp_die "cold snapshot: $desc"

step warm "SELECT dalp_fdw.take_snapshot('bench', '$token', '$later');"
warm_ms=$STEP_MS
desc=$(describe "$STEP_OUT")
line warm "$STEP_MS" "$STEP_KB" "snapshot $STEP_OUT: $desc"
[[ $desc == *"reconciled true" ]] || dalp_die "warm snapshot: $desc"

step sync "SELECT 'inserted ' || inserted || ', retracted ' || retracted FROM dalp_fdw.sync_events('bench', '$token');"
line sync "$STEP_MS" "$STEP_KB" "$STEP_OUT"

# The two snapshots against an independent replay of the API's events.
diffs=$(dalp_psql -tA <<SQL
WITH e AS (SELECT block_timestamp, event_name, "values"->>'from' AS f, "values"->>'to' AS t,
                  "values"->>'owner' AS o, amount
             FROM bench.events WHERE token_address = '$token' AND block_timestamp <= '$later'),
d AS (SELECT t AS account, amount AS b, block_timestamp FROM e WHERE event_name IN ('MintCompleted', 'TransferCompleted')
      UNION ALL SELECT f, -amount, block_timestamp FROM e WHERE event_name IN ('BurnCompleted', 'TransferCompleted')
      UNION ALL SELECT o, -amount, block_timestamp FROM e WHERE event_name = 'Redeemed'),
r AS (SELECT s.id, d.account, sum(d.b) AS balance_exact
        FROM dalp_fdw.snapshots s JOIN d ON d.block_timestamp <= s.record_time
       GROUP BY s.id, d.account HAVING sum(d.b) <> 0),
b AS (SELECT snapshot_id, account, balance_exact FROM dalp_fdw.snapshot_balances WHERE balance_exact <> 0)
SELECT count(*) FROM ((TABLE r EXCEPT TABLE b) UNION ALL (TABLE b EXCEPT TABLE r)) x;
SQL
)
[[ $diffs == 0 ]] || dalp_die "the snapshots differ from an independent replay in $diffs balances"
mirror=$(dalp_psql -tAc "SELECT pg_size_pretty(pg_total_relation_size('dalp_fdw_ledger.event_log'))")

mkdir -p "$(dirname "$RESULTS")"
{
  printf 'dalp_fdw snapshot benchmark, %s, %s CPUs, PostgreSQL %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" \
    "$(dalp_psql -tAc 'SHOW server_version')"
  printf 'token BIG: %s events (simulator seed 42, built in %ss); record times %s and %s\n' "$EVENTS" "$sim_start_s" "$mid" "$later"
  printf '%-8s %11s %12s  %s\n' step time VmHWM result
  printf '%s\n' "${report[@]}"
  printf 'idle backend VmHWM %s kB; mirror after the run: %s (table and indexes)\n' "$idle_kb" "$mirror"
  printf 'cold snapshot / scan: %s; warm snapshot / scan: %s; both equal an independent replay of the API\n' \
    "$(ratio "$cold_ms" "$scan_ms")" "$(ratio "$warm_ms" "$scan_ms")"
} | tee "$RESULTS"
echo "ok: report in $RESULTS"
