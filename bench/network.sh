#!/usr/bin/env bash
# bench/network.sh: dalp_fdw at network speed: what latency costs when a
# query reads few pages, many tokens, or counts across tokens.  One
# command, as root on Debian 12: installs what is missing, builds and
# installs the extension, starts its own PostgreSQL 15 and simulator (test/lib.sh), sets
# 20 ms of latency on every request, measures, prints the table and writes
# bench/network.md, then stops everything.  About 2 minutes.
#
# The simulator has token BIG (200,000 events, 1,000 pages of 200) and 40
# small tokens SML001..SML040 (one page of holders and of events each).
# Every row is timed in this one run, RUNS times after a warm-up, the
# median reported with its ideal: one round trip for each round of
# `concurrency` requests that must follow one another.
#
# Environment: BENCH_PGPORT [54369], BENCH_SIM_PORT [18950],
# BENCH_RUNS [7], BENCH_RESULTS [bench/network.md].
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DALP_PGPORT=${BENCH_PGPORT:-54369}
# shellcheck source-path=SCRIPTDIR source=../test/lib.sh
source "$BENCH_DIR/../test/lib.sh"

SIM_PORT=${BENCH_SIM_PORT:-18950}
RUNS=${BENCH_RUNS:-7}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/network.md}
LATENCY_MS=20
CONCURRENCY=8
SMALL=40
((RUNS >= 1)) || dalp_die "BENCH_RUNS must be at least 1"

started=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
dalp_install_deps
dalp_build_install
dalp_start_cluster
dalp_start_sim --port "$SIM_PORT" --big-token-events 200000 --small-tokens "$SMALL"
url=$DALP_SIM_LAST_URL
MEASUREMENTS=$DALP_TMPDIR/network.jsonl
: >"$MEASUREMENTS"
simctl() { "$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$url" "$@" >/dev/null; }

# The client-side rate limit is lifted: it is not what is measured here.
dalp_sim_schema net "$url" "concurrency '$CONCURRENCY', rate_limit_per_minute '6000000'"
dalp_psql -q <<SQL
-- Run query \`runs\` times: the wall time of each and its result, which
-- must be the same every time.
CREATE FUNCTION net_time(query text, runs int) RETURNS json LANGUAGE plpgsql AS \$\$
DECLARE
  ms float8[] := '{}';
  results text[] := '{}';
  result text;
  t0 timestamptz;
BEGIN
  FOR i IN 1..runs LOOP
    t0 := clock_timestamp();
    EXECUTE query INTO result;
    ms := ms || 1000 * extract(epoch FROM clock_timestamp() - t0)::float8;
    results := results || result;
  END LOOP;
  RETURN json_build_object('ms', ms, 'results', results);
END \$\$;
SQL
big=$(dalp_psql -tAc "SELECT address FROM net.tokens WHERE symbol = 'BIG'")
[[ -n $big ]] || dalp_die "the simulator has no BIG token"
# a time window of BIG holding 60 pages of events
cut=$(dalp_psql -tAc "SELECT block_timestamp FROM net.events WHERE token_address = '$big'
                       ORDER BY block_timestamp OFFSET 11999 LIMIT 1")
window="token_address = '$big' AND block_timestamp <= '$cut'"
n60=$(dalp_psql -tAc "SELECT count(*) FROM net.events WHERE $window")
dalp_psql -q -c "CREATE TABLE my_tokens AS SELECT address AS addr FROM net.tokens WHERE symbol LIKE 'SML%'"

simctl faults "{\"latency_ms\": $LATENCY_MS}"

# measure ID LABEL ROUNDS QUERY [SETUP]: RUNS timed runs in one session
# (after SETUP) after a warm-up; ROUNDS is the ideal number of round trips
# (0: none to compare with); the requests of the timed runs from
# dalp_fdw.stats().
measure() {
  local id=$1 label=$2 rounds=$3 query=$4 setup=${5:-} out
  dalp_log "$label: $RUNS runs"
  out=$(dalp_psql -qtA <<SQL
\\o /dev/null
SET client_min_messages = warning;
$setup
$query;
SELECT dalp_fdw.stats_reset();
\\o
SELECT net_time(\$q\$$query\$q\$, $RUNS);
SELECT requests FROM dalp_fdw.stats() WHERE server = 'net';
SQL
)
  mapfile -t lines <<<"$out"
  printf '{"id": "%s", "label": "%s", "rounds": %s, "query": %s, "sql": %s, "requests": %s}\n' \
    "$id" "$label" "$rounds" "$("$DALP_PYTHON" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$setup $query")" \
    "${lines[0]}" "${lines[1]}" >>"$MEASUREMENTS"
}
rounds() { echo $((1 + ($1 - 1 + CONCURRENCY - 1) / CONCURRENCY)); }

## small scans: the first page, then the rest `concurrency` at a time
p60=$(((n60 + 199) / 200))
measure scan60 "$p60 pages, every row wanted" "$(rounds "$p60")" \
  "SELECT sum(amount) FROM net.events WHERE $window"
measure scan60_limit "$p60 pages under a LIMIT (the window ramps up)" "$(rounds "$p60")" \
  "SELECT sum(amount) FROM (SELECT amount FROM net.events WHERE $window LIMIT 100000000) s"
measure scan1000 "1000 pages, every row wanted" "$(rounds 1000)" \
  "SELECT sum(amount) FROM net.events WHERE token_address = '$big'"
measure scan1000_limit "1000 pages under a LIMIT (the window ramps up)" "$(rounds 1000)" \
  "SELECT sum(amount) FROM (SELECT amount FROM net.events WHERE token_address = '$big' LIMIT 100000000) s"

## many tokens of one page each, listed in a local table
measure list40 "holders of $SMALL tokens listed in a local table, = ANY (ARRAY(SELECT ...))" \
  $(((SMALL + CONCURRENCY - 1) / CONCURRENCY)) \
  "SELECT count(*) || ' ' || sum(balance) FROM net.holders WHERE token_address = ANY (ARRAY(SELECT addr FROM my_tokens))"

## a join of tokens to holders read as one scan: the tokens request, then
## the 40 tokens' holders `concurrency` at a time; unpushed for comparison
join="FROM net.tokens t JOIN net.holders h ON h.token_address = t.address WHERE t.name ILIKE 'Small Deposit%'"
measure join40 "tokens JOIN holders, $SMALL tokens" $((1 + (SMALL + CONCURRENCY - 1) / CONCURRENCY)) \
  "SELECT count(*) || ' ' || sum(balance) FROM (SELECT t.symbol, h.balance $join) s"
measure join40_off "the same, dalp_fdw.pushdown off (a nested loop)" 0 \
  "SELECT count(*) || ' ' || sum(balance) FROM (SELECT t.symbol, h.balance $join) s" \
  "SET dalp_fdw.pushdown = off;"
measure join40_count "count(*) GROUP BY event_name over tokens JOIN events, $SMALL tokens" \
  $((1 + (SMALL + CONCURRENCY - 1) / CONCURRENCY)) \
  "SELECT string_agg(event_name || ' ' || n, ', ' ORDER BY event_name)
     FROM (SELECT e.event_name, count(*) AS n FROM net.tokens t JOIN net.events e ON e.token_address = t.address
            WHERE t.name ILIKE 'Small Deposit%' GROUP BY e.event_name) f"

## count(*) GROUP BY event_name over every token: the listing, then one
## request per token; then the same with nothing pushed down, every event
ntokens=$(dalp_psql -tAc "SELECT count(*) FROM net.tokens")
facets="SELECT string_agg(event_name || ' ' || n, ', ' ORDER BY event_name)
  FROM (SELECT event_name, count(*) AS n FROM net.events GROUP BY event_name) f"
measure facets "count(*) GROUP BY event_name, all $ntokens tokens" \
  $((1 + (ntokens + CONCURRENCY - 1) / CONCURRENCY)) "$facets"
measure facets_off "the same, dalp_fdw.pushdown off (every event read)" 0 "$facets" \
  "SET dalp_fdw.pushdown = off;"

simctl faults '{}'
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
"$DALP_PYTHON" - "$MEASUREMENTS" "$RESULTS" <<PY
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = ["# dalp_fdw at network speed", "",
       "Written by \`bench/network.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $((SECONDS - started)) s, "
       "on $(nproc) CPUs shared with other developers' builds and tests (load average before / after: "
       "$load_before / $load_after): expect noise of a few per cent. PostgreSQL "
       "$(dalp_psql -tAc 'SHOW server_version'), server option concurrency $CONCURRENCY, "
       "every request answered $LATENCY_MS ms late by the simulator.", "",
       "Times are medians of $RUNS runs after a warm-up, with the fastest and slowest; the ideal is "
       "$LATENCY_MS ms per round of requests that must follow one another: the first page, then the "
       "others $CONCURRENCY at a time.", "",
       "| # | what | requests per run | median | fastest – slowest | ideal | median / ideal |",
       "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
for i, r in enumerate(rows, 1):
    ms = r["sql"]["ms"]
    assert len(set(r["sql"]["results"])) == 1, (r["id"], r["sql"]["results"])
    ideal = r["rounds"] * $LATENCY_MS
    med = statistics.median(ms)
    out.append("| %d | %s | %d | %.0f ms | %.0f – %.0f ms | %s | %s |" % (
        i, r["label"], r["requests"] // $RUNS, med, min(ms), max(ms), "%d ms" % ideal if ideal else "–",
        "%.2f×" % (med / ideal) if ideal else "–"))
# the issue's targets: (row id, ideal rounds, factor)
by_id = {r["id"]: r for r in rows}
targets = [("scan60", "small scan, every row wanted: within 1.3× of the ideal", 1.3, by_id["scan60"]["rounds"]),
           ("scan1000", "1,000 pages, every row wanted: within 1.15× of the ideal", 1.15, by_id["scan1000"]["rounds"]),
           ("join40", "join of $SMALL tokens of one page: within 1.3× of (1 + ⌈$SMALL/$CONCURRENCY⌉) × $LATENCY_MS ms",
            1.3, 1 + -(-$SMALL // $CONCURRENCY)),
           ("list40", "local list of $SMALL tokens: within 1.3× of (1 + ⌈$SMALL/$CONCURRENCY⌉) × $LATENCY_MS ms",
            1.3, 1 + -(-$SMALL // $CONCURRENCY))]
out += ["", "## Targets", "", "| target | bound | median | verdict |", "| --- | ---: | ---: | --- |"]
for rid, text, factor, nrounds in targets:
    bound = factor * nrounds * $LATENCY_MS
    med = statistics.median(by_id[rid]["sql"]["ms"])
    out.append("| %s | %.0f ms | %.0f ms | %s |" % (text, bound, med, "**met**" if med <= bound else "**not met**"))
out += ["", "## Queries", ""]
out += ["%d. \`%s\`" % (i, r["query"].strip()) for i, r in enumerate(rows, 1)]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
dalp_log "wrote $RESULTS ($((SECONDS - started)) s)"
