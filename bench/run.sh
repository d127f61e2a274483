#!/usr/bin/env bash
# bench/run.sh: the speed benchmark of dalp_fdw.  One command, as root on
# Debian 12: installs what is missing, builds and installs the extension
# and bench/raw_client, starts its own PostgreSQL 15 cluster and simulators
# (test/lib.sh), measures, prints the table and writes bench/results.md,
# then stops everything.  About 8 minutes.
#
# Every row runs in this one run against the same simulator data (token
# BIG, 200,000 events): dalp_fdw at concurrency 1, 4 and 8, the raw client
# (libcurl + json-c, the same concurrency), the PL/Python peer; then the
# same with 20 ms of latency per request; then the backend's peak memory
# for 10,000 and 1,000,000 events on a second simulator.
#
# Environment: BENCH_PGPORT [54339], BENCH_SIM_PORT [18930] (the memory
# simulator takes the next port), BENCH_RUNS [5] (measured runs per row,
# the median is reported), BENCH_RESULTS [bench/results.md], BENCH_ROWS
# [all]: while iterating, only the rows whose ids are listed (as in the
# measurements: fdw_c4 raw_c4 fdw_c8_lat raw_c8_lat mem ...), printed
# rather than written to BENCH_RESULTS.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DALP_PGPORT=${BENCH_PGPORT:-54339}
# shellcheck source-path=SCRIPTDIR source=../test/lib.sh
source "$BENCH_DIR/../test/lib.sh"

SIM_PORT=${BENCH_SIM_PORT:-18930}
MEM_SIM_PORT=$((SIM_PORT + 1))
RUNS=${BENCH_RUNS:-5}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results.md}
EVENTS=200000
MEM_EVENTS=1000000
MEM_SMALL=10000
LATENCY_MS=20
TICKS=$(getconf CLK_TCK)
RAW=$BENCH_DIR/raw_client
((RUNS >= 1)) || dalp_die "BENCH_RUNS must be at least 1"

started=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
dalp_install_deps
dalp_build_install
dalp_log "building bench/raw_client"
gcc -O2 -Wall -o "$RAW" "$BENCH_DIR/raw_client.c" -lcurl -ljson-c ||
  dalp_die "building bench/raw_client failed (compiler output above)"
dalp_start_cluster
dalp_start_sim --port "$SIM_PORT" --big-token-events "$EVENTS"
url=$DALP_SIM_LAST_URL
simpid=$(<"$DALP_TMPDIR/sim.$SIM_PORT.pid")
MEASUREMENTS=$DALP_TMPDIR/measurements.jsonl
: >"$MEASUREMENTS"

ROWS=${BENCH_ROWS:-}
# want ID: is the row ID measured in this run?
want() { [[ -z $ROWS || " $ROWS " == *" $1 "* ]]; }

simctl() { "$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$1" "${@:2}" >/dev/null; }
record() { printf '%s\n' "$1" >>"$MEASUREMENTS"; }
sim_cpu_ms() { awk -v t="$TICKS" '{printf "%d", ($14 + $15) * 1000 / t}' "/proc/$1/stat"; }

# One server per concurrency.  The client-side rate limit is lifted: its
# default (10,000 requests a minute, DALP's own default) alone would hold
# 1,000 pages to 6 s, and it is not what is measured here.
dalp_psql -q -f "$BENCH_DIR/bench.sql"
for c in 1 4 8; do
  dalp_psql -q <<SQL
CREATE SERVER bench_c$c FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', concurrency '$c', rate_limit_per_minute '6000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_c$c OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA c$c;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events) FROM SERVER bench_c$c INTO c$c;
SQL
done
# the PL/Python peer's urllib asks for no compression: compare like with like
dalp_psql -q <<SQL
CREATE SERVER bench_plain FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', concurrency '4', rate_limit_per_minute '6000000', compression 'false');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_plain OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA plain;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (events) FROM SERVER bench_plain INTO plain;
SQL
token=$(dalp_psql -tAc "SELECT address FROM c4.tokens WHERE symbol = 'BIG'")
[[ -n $token ]] || dalp_die "the simulator has no BIG token"

fdw_query() { echo "SELECT sum(amount) FROM c$1.events WHERE token_address = '$token'"; }
py_query="SELECT sum(amount) FROM bench_py_events('$url', '$DALP_API_KEY', '$token')"

# measure_sql ID LABEL CONCURRENCY LATENCY SERVER WARMUP QUERY [N]: N (or
# RUNS) timed runs of QUERY in one session, after WARMUP in the same
# session; with SERVER, also dalp_fdw.stats() of those runs.
measure_sql() {
  local id=$1 label=$2 conc=$3 lat=$4 server=$5 warmup=$6 query=$7 runs=${8:-$RUNS} out
  want "$id" || return 0
  dalp_log "$label, concurrency $conc, latency $lat ms: $runs runs"
  out=$(dalp_psql -qtA <<SQL
\\o /dev/null
SET client_min_messages = warning;
$warmup;
SELECT dalp_fdw.stats_reset();
\\o
SELECT bench_time(\$q\$$query\$q\$, $runs, $simpid, $TICKS);
SELECT coalesce((SELECT row_to_json(s) FROM dalp_fdw.stats() s WHERE server = '$server'), 'null');
SQL
)
  mapfile -t lines <<<"$out"
  record "{\"id\": \"$id\", \"label\": \"$label\", \"concurrency\": $conc, \"latency_ms\": $lat, \"sql\": ${lines[0]}, \"stats\": ${lines[1]}}"
}

# measure_raw ID LABEL CONCURRENCY LATENCY [-w] [raw_client flags]: RUNS
# runs of the raw client in one process (its connections kept across runs);
# with -w, one run after a warm-up run that opens them, as a dalp_fdw
# session's warm-up does.
measure_raw() {
  local id=$1 label=$2 conc=$3 lat=$4 runs=$RUNS skip=1 s0 s1 out
  shift 4
  if [[ ${1:-} == -w ]]; then
    runs=1 skip=2
    shift
  fi
  want "$id" || return 0
  dalp_log "$label, concurrency $conc, latency $lat ms: $runs runs"
  s0=$(sim_cpu_ms "$simpid")
  out=$("$RAW" "$url" "$DALP_API_KEY" "$token" -c "$conc" -r $((runs + skip - 1)) "$@" |
    tail -n +"$skip") || dalp_die "raw_client failed"
  s1=$(sim_cpu_ms "$simpid")
  record "{\"id\": \"$id\", \"label\": \"$label\", \"concurrency\": $conc, \"latency_ms\": $lat, \"raw\": \"${out//$'\n'/;}\", \"sim_cpu_ms_total\": $((s1 - s0))}"
}

# Without latency.  The first scan renders every page in the simulator,
# which keeps them: it is timed as the cold run, the others are warm.
measure_sql fdw_cold "dalp_fdw, cold simulator cache" 4 0 bench_c4 "SELECT 1" "$(fdw_query 4)" 1
want fdw_cold || dalp_psql -qtAc "$(fdw_query 4)" >/dev/null
# dalp_fdw and the raw client, compared at each concurrency, take turns run
# by run (each run after a warm-up of its own), so that both meet what else
# the machine does at that time.
for ((round = 1; round <= RUNS; round++)); do
  for c in 4 1 8; do
    measure_sql "fdw_c$c" dalp_fdw "$c" 0 "bench_c$c" "$(fdw_query "$c")" "$(fdw_query "$c")" 1
    measure_raw "raw_c$c" "raw client" "$c" 0 -w
  done
done
plain_query="SELECT sum(amount) FROM plain.events WHERE token_address = '$token'"
measure_sql fdw_plain "dalp_fdw, compression off" 4 0 bench_plain "$plain_query" "$plain_query"
measure_raw raw_fetch "raw client, fetch only (no gzip, no parsing)" 4 0 -n -i
measure_raw raw_identity "raw client, no compression" 4 0 -i
measure_sql py "PL/Python peer" 1 0 "" "$py_query LIMIT 1" "$py_query"

# With latency: each request answered LATENCY_MS later.
simctl "$url" faults "{\"latency_ms\": $LATENCY_MS}"
for c in 1 4 8; do
  measure_sql "fdw_c${c}_lat" dalp_fdw "$c" "$LATENCY_MS" "bench_c$c" \
    "SELECT id FROM c$c.events WHERE token_address = '$token' LIMIT 1" "$(fdw_query "$c")"
done
for c in 4 8; do
  measure_raw "raw_c${c}_lat" "raw client" "$c" "$LATENCY_MS"
done
measure_raw raw_fetch_lat "raw client, fetch only (no gzip, no parsing)" 8 "$LATENCY_MS" -n -i
measure_sql py_lat "PL/Python peer" 1 "$LATENCY_MS" "" "$py_query LIMIT 1" "$py_query"
simctl "$url" faults '{}'
dalp_stop_sim "$SIM_PORT"

if [[ -n $ROWS ]] && ! want mem; then
  "$DALP_PYTHON" "$BENCH_DIR/report.py" --brief --measurements "$MEASUREMENTS"
  exit 0
fi

# Peak memory: a fresh backend per scan, VmHWM read by the backend itself.
dalp_start_sim --port "$MEM_SIM_PORT" --big-token-events "$MEM_EVENTS"
dalp_psql -q <<SQL
CREATE SERVER bench_mem FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$DALP_SIM_LAST_URL', rate_limit_per_minute '6000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_mem OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA mem;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events) FROM SERVER bench_mem INTO mem;
SQL
mem_token=$(dalp_psql -tAc "SELECT address FROM mem.tokens WHERE symbol = 'BIG'")
[[ -n $mem_token ]] || dalp_die "the memory simulator has no BIG token"
measure_memory() {
  local id=$1 limit=$2 out
  dalp_log "peak backend memory, $id"
  out=$(dalp_psql -qtA <<SQL
SELECT count(*) FROM (SELECT amount FROM mem.events WHERE token_address = '$mem_token' $limit) s;
SELECT bench_backend_hwm_kb();
SQL
)
  mapfile -t lines <<<"$out"
  record "{\"id\": \"$id\", \"events\": ${lines[0]}, \"hwm_kb\": ${lines[1]}}"
}
dalp_log "peak backend memory, a fresh backend"
record "{\"id\": \"mem_idle\", \"hwm_kb\": $(dalp_psql -tAc "SELECT bench_backend_hwm_kb()")}"
measure_memory mem_small "LIMIT $MEM_SMALL"
measure_memory mem_big ""

if [[ -n $ROWS ]]; then
  "$DALP_PYTHON" "$BENCH_DIR/report.py" --brief --measurements "$MEASUREMENTS"
  exit 0
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
"$DALP_PYTHON" "$BENCH_DIR/report.py" \
  --measurements "$MEASUREMENTS" --out "$RESULTS" \
  --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --meta "nproc=$(nproc)" \
  --meta "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
  --meta "postgres=$(dalp_psql -tAc 'SHOW server_version')" \
  --meta "libcurl=$(curl-config --version 2>/dev/null | sed "s/^libcurl //")" \
  --meta "json-c=$(dpkg-query -W -f='${Version}' libjson-c5 2>/dev/null || echo unknown)" \
  --meta "load_before=$load_before" --meta "load_after=$load_after" \
  --meta "runs=$RUNS" --meta "events=$EVENTS" --meta "page_size=200" \
  --meta "latency_ms=$LATENCY_MS" --meta "mem_events=$MEM_EVENTS" \
  --meta "mem_small=$MEM_SMALL" --meta "seconds=$((SECONDS - started))"
dalp_log "wrote $RESULTS ($((SECONDS - started)) s)"
