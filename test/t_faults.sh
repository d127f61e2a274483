#!/usr/bin/env bash
# Faults never lose a query.  Against a simulator of its own:
#   - 50 full scans of a token's events (5 pages each, 4 in flight) with every
#     3rd request answering 503 and every 5th 429 with Retry-After: each
#     returns exactly the rows of a fault-free scan, and every fault was
#     retried once (retry_after_max_ms caps Retry-After at 100 ms there, so
#     the 50 scans take seconds; the full Retry-After is checked on its own);
#   - 429, 500, 502, 503, 504, a reset, a response that stalls mid-body and a
#     connect timeout are retried; nothing else is; backoff is exponential
#     from retry_base_ms with jitter; Retry-After is honoured up to
#     retry_after_max_ms; an exhausted request says how many attempts were
#     made and what the last answer was;
#   - connect_timeout_ms and timeout_ms bound each attempt;
#   - a redirect is never followed, to another origin or the same one;
#   - bodies that are too large (measured after gzip decoding), not JSON, or
#     JSON of the wrong shape are clean errors naming the request path (and
#     the column); an absent optional field is NULL, an unknown one ignored;
#   - malformed JSON every 5th request: clean errors, the backend stays up;
#   - 300 errors raised mid-transfer (in subtransactions and at top level)
#     leak neither memory nor transfers nor connections.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

dalp_own_sim 32
other_port=$((DALP_SIM_PORT + 33))
dalp_start_sim --port "$other_port"
other_url=$DALP_SIM_LAST_URL
blackhole_port=$((DALP_SIM_PORT + 34))
# where this test's part of the server log starts
log_start=$(wc -c <"$DALP_PGLOG")

faults() { simctl faults "$1" >/dev/null && simctl clear >/dev/null; }

# What the simulator logged since the last clear: "status/fault" per request
# (the first 20, then how many there were).
sim_log() {
  simctl log | "$DALP_PYTHON" -c 'import json, sys
log = ["%s/%s" % (e["status"], e["fault"] or "-") for e in json.load(sys.stdin)]
print(" ".join(log[:20]) + (" ... (%d requests)" % len(log) if len(log) > 20 else ""))'
}

# How many logged requests got each "status/fault": "200/- 250 503/503 124 ...".
sim_counts() {
  simctl log | "$DALP_PYTHON" -c 'import collections, json, sys
c = collections.Counter("%s/%s" % (e["status"], e["fault"] or "-") for e in json.load(sys.stdin))
print(" ".join("%s %d" % kv for kv in sorted(c.items())))'
}

# Milliseconds between the starts of consecutive logged requests.
sim_gaps() {
  simctl log | "$DALP_PYTHON" -c 'import json, sys
log = json.load(sys.stdin)
print(" ".join("%d" % (b["start_ms"] - a["start_ms"]) for a, b in zip(log, log[1:])))'
}

# A server, its user mapping and its tables (in a schema of the same name).
make_server() {
  local name=$1 opts=$2
  dalp_psql -q <<SQL
SET client_min_messages = warning;
DROP SERVER IF EXISTS $name CASCADE;
DROP SCHEMA IF EXISTS $name CASCADE;
CREATE SERVER $name FOREIGN DATA WRAPPER dalp_fdw OPTIONS ($opts);
CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA $name;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events, factories) FROM SERVER $name INTO $name;
SQL
}

# Runs SQL in the session and fails unless it errs with SQLSTATE $2 and its
# output holds every further argument.
expect_error() {
  local sql=$1 state=$2 s
  shift 2
  sess_run "$sql"
  [[ $SESS_OUT == *"ERROR:  $state:"* ]] || dalp_die "expected SQLSTATE $state from: $sql; got: $SESS_OUT"
  for s in "$@"; do
    [[ $SESS_OUT == *"$s"* ]] || dalp_die "expected '$s' in the error of: $sql; got: $SESS_OUT"
  done
}

dalp_psql -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS dalp_fdw"
# ft: the fault suite's server.  5 pages of 50 per scan; short backoffs.
make_server ft "base_url '$url', page_size '50', retry_base_ms '10', retry_after_max_ms '100'"
sess_open
sess_run "SELECT address FROM ft.tokens WHERE symbol = 'CSL';"
token=$SESS_OUT
[[ $token == 0x* ]] || dalp_die "no CSL token: $token"
scan="SELECT count(*) || ' ' || md5(string_agg(e::text, E'\n')) FROM (SELECT * FROM ft.events WHERE token_address = '$token') e;"
sess_run "$scan"
baseline=$SESS_OUT
[[ $baseline == "239 "* ]] || dalp_die "fault-free scan: expected 239 events, got: $baseline"

## 50 scans through 503s and 429s
faults '{"every": {"503": 3, "429": 5}, "retry_after": 1}'
sess_run "SELECT dalp_fdw.stats_reset();"
t0=$SECONDS
for ((i = 1; i <= 50; i++)); do
  sess_run "$scan"
  [[ $SESS_OUT == "$baseline" ]] || dalp_die "scan $i under faults returned '$SESS_OUT', expected '$baseline'"
done
scan_secs=$((SECONDS - t0))
declare -A count=(["200/-"]=0 ["503/503"]=0 ["429/429"]=0)
while read -r k v; do count[$k]=$v; done < <(sim_counts | xargs -n 2)
n503=${count[503/503]} n429=${count[429/429]} nok=${count[200/-]}
sess_run "SELECT retries || ' ' || errors FROM dalp_fdw.stats() WHERE server = 'ft';"
read -r retries errors <<<"$SESS_OUT"
((n503 > 50 && n429 > 30)) || dalp_die "too few faults injected: $n503 503s, $n429 429s"
((retries == n503 + n429 && errors == 0)) ||
  dalp_die "expected one retry per fault ($((n503 + n429))) and no error, stats say $retries retries, $errors errors"
dalp_log "50 scans: $nok pages + $n503 503s + $n429 429s retried, $scan_secs s"
# the control: without retries the same faults fail the scan
sess_run "ALTER SERVER ft OPTIONS (ADD max_retries '0');"
sess_run "$scan"
[[ $SESS_OUT == *"ERROR:  53400:"*"HTTP 429"* || $SESS_OUT == *"ERROR:  HV00N:"*"HTTP 503"* ]] ||
  dalp_die "without retries the faulted scan did not fail: $SESS_OUT"
sess_run "ALTER SERVER ft OPTIONS (DROP max_retries);"

## which answers are retried
make_server fr "base_url '$url', max_retries '1', retry_base_ms '1', timeout_ms '1000'"
make_server f0 "base_url '$url', max_retries '0', timeout_ms '1000'"
sess_run "SELECT count(*) FROM fr.factories;"
nfactories=$SESS_OUT
# every 2nd request faulted: the query's first attempt (request 2) fails,
# the retry (request 3) succeeds; without retries the query fails
for kind in 429 500 502 503 504 reset stall; do
  faults "{\"every\": {\"$kind\": 2}, \"retry_after\": 0, \"slow_ms\": 10000}"
  sess_run "SELECT count(*) FROM fr.factories; SELECT count(*) FROM fr.factories;"
  [[ $SESS_OUT == "$nfactories"$'\n'"$nfactories" ]] || dalp_die "$kind: not absorbed by a retry: $SESS_OUT"
  status=$kind
  [[ $kind == reset ]] && status=0
  [[ $kind == stall ]] && status=200
  [[ $(sim_log) == "200/- $status/$kind 200/-" ]] || dalp_die "$kind: the simulator saw: $(sim_log)"
  faults "{\"every\": {\"$kind\": 1}, \"retry_after\": 0, \"slow_ms\": 10000}"
  sess_run "SELECT count(*) FROM f0.factories;"
  [[ $SESS_OUT == *ERROR* ]] || dalp_die "$kind: the query succeeded without retries: $SESS_OUT"
done
# answers no retry can mend: one request each
for kind in 400 403 422 html malformed wrongshape redirect; do
  faults "{\"every\": {\"$kind\": 1}}"
  sess_run "SELECT count(*) FROM fr.factories;"
  [[ $SESS_OUT == *ERROR* && $(sim_log) == *"/$kind" && $(sim_log) != *" "* ]] ||
    dalp_die "$kind: expected one request and an error; the simulator saw '$(sim_log)'; got: $SESS_OUT"
done
faults '{}'
expect_error "SELECT count(*) FROM fr.events WHERE token_address = '0x0000000000000000000000000000000000000001';" P0002
[[ $(sim_log) == "404/-" ]] || dalp_die "404: retried: $(sim_log)"
make_server fw "base_url '$url', max_retries '3', retry_base_ms '1'"
dalp_psql -qc "ALTER USER MAPPING FOR CURRENT_USER SERVER fw OPTIONS (SET api_key 'sm_dalp_wrong_key')"
faults '{}'
expect_error "SELECT count(*) FROM fw.factories;" 28000 "HTTP 401"
[[ $(sim_log) == "401/-" ]] || dalp_die "401: retried: $(sim_log)"

## exhausted retries: the attempts and the last answer
make_server fx "base_url '$url', max_retries '2', retry_base_ms '1', timeout_ms '1000'"
faults '{"every": {"503": 1}}'
expect_error "SELECT count(*) FROM fx.factories;" HV00N "HTTP 503" "Service unavailable" "3 attempts"
faults '{"every": {"reset": 1}}'
expect_error "SELECT count(*) FROM fx.factories;" HV00N "after 3 attempts" "The last attempt"
faults '{"every": {"429": 1}, "retry_after": 0}'
expect_error "SELECT count(*) FROM fx.factories;" 53400 "HTTP 429" "3 attempts"
# a refused connection is retried too
closed_port=$((DALP_SIM_PORT + 38))
_dalp_require_free_port "$closed_port" "a port nothing listens on" DALP_SIM_PORT
make_server fn "base_url 'http://127.0.0.1:$closed_port', max_retries '2', retry_base_ms '1'"
expect_error "SELECT count(*) FROM fn.factories;" HV00N "after 3 attempts" "127.0.0.1:$closed_port"

## the client-side rate limit paces requests: 600 a minute is a burst of 10
## (a second's worth), then one every 100 ms
make_server fl "base_url '$url', rate_limit_per_minute '600'"
faults '{}'
sess_run "SELECT dalp_fdw.stats_reset();"
sess_send "$(for ((i = 0; i < 25; i++)); do printf 'SELECT count(*) FROM fl.factories;\n'; done)"
sess_wait
rate_ms=$(sess_ms)
read -r -a gaps <<<"$(sim_gaps)"
sess_run "SELECT rate_limit_waits FROM dalp_fdw.stats() WHERE server = 'fl';"
((SESS_OUT == 15)) || dalp_die "rate limit: expected 15 requests to wait, stats say $SESS_OUT"
for ((i = 10; i < 24; i++)); do
  ((gaps[i] >= 90)) || dalp_die "rate limit: request $((i + 2)) came ${gaps[i]} ms after the one before (gaps: ${gaps[*]})"
done
((rate_ms >= 1400 && rate_ms < 2500)) || dalp_die "rate limit: 25 requests took $rate_ms ms, expected ~1500"
dalp_log "rate_limit_per_minute 600: 25 requests in $rate_ms ms"

## backoff: retry_base_ms * 2^(n-1), times a jitter factor in [0.5, 1)
make_server fb "base_url '$url', max_retries '5', retry_base_ms '100'"
faults '{"every": {"503": 1}}'
expect_error "SELECT count(*) FROM fb.factories;" HV00N "6 attempts"
read -r -a backoff_gaps <<<"$(sim_gaps)"
((${#backoff_gaps[@]} == 5)) || dalp_die "backoff: expected 6 requests, gaps: ${backoff_gaps[*]}"
lo=100 hi=0 # jitter factors, in percent
for ((i = 0; i < 5; i++)); do
  ideal=$((100 << i))
  pct=$((backoff_gaps[i] * 100 / ideal))
  # the simulator logs when it starts each request: allow 30 ms of slack
  ((backoff_gaps[i] >= ideal / 2 && backoff_gaps[i] <= ideal + 30)) ||
    dalp_die "backoff $((i + 1)): waited ${backoff_gaps[i]} ms, expected $((ideal / 2))..$ideal (gaps: ${backoff_gaps[*]})"
  ((pct < lo)) && lo=$pct
  ((pct > hi)) && hi=$pct
done
# five factors within 3 points of each other would mean no jitter (a false
# alarm has a chance below 1e-4)
((hi - lo >= 3)) || dalp_die "backoff without jitter? gaps ${backoff_gaps[*]} ms"
dalp_log "backoff gaps ${backoff_gaps[*]} ms"

## Retry-After: honoured in full, and capped by retry_after_max_ms
make_server fa "base_url '$url', max_retries '1', retry_base_ms '1'"
faults '{"every": {"429": 1}, "retry_after": 1}'
sess_run "SELECT count(*) FROM fa.factories;"
read -r gap <<<"$(sim_gaps)"
((gap >= 1000 && gap < 1300)) || dalp_die "Retry-After: 1 was followed by a retry after $gap ms"
retry_after_gap=$gap
sess_run "ALTER SERVER fa OPTIONS (ADD retry_after_max_ms '300');"
faults '{"every": {"429": 1}, "retry_after": 1}'
sess_run "SELECT count(*) FROM fa.factories;"
read -r gap <<<"$(sim_gaps)"
((gap >= 300 && gap < 600)) || dalp_die "Retry-After: 1 capped at 300 ms was followed by a retry after $gap ms"
dalp_log "Retry-After: 1 -> retry after $retry_after_gap ms; capped at 300 ms -> $gap ms"

## timeouts bound each attempt
# timeout_ms: a response that stalls mid-body, and one that never starts
make_server ft1 "base_url '$url', max_retries '1', retry_base_ms '1', timeout_ms '700'"
for kind in stall slow; do
  faults "{\"every\": {\"$kind\": 1}, \"slow_ms\": 10000}"
  expect_error "SELECT count(*) FROM ft1.factories;" HV00N "after 2 attempts" "timed out"
  ms=$(sess_ms)
  ((ms >= 1400 && ms < 2500)) || dalp_die "timeout_ms 700, $kind, 2 attempts: took $ms ms"
  dalp_log "timeout_ms 700 over 2 attempts ($kind): $ms ms"
done
# connect_timeout_ms: a listener whose accept queue is full never completes
# a connection
_dalp_require_free_port "$blackhole_port" "a black-hole listener" DALP_SIM_PORT
"$DALP_PYTHON" -c '
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", port))
s.listen(0)
held = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    held.append(c)
open(sys.argv[2], "w").close()
time.sleep(600)
' "$blackhole_port" "$DALP_TMPDIR/blackhole.ready" &
blackhole_pid=$!
dalp_atexit kill "$blackhole_pid"
for ((i = 0; i < 100; i++)); do [[ -f $DALP_TMPDIR/blackhole.ready ]] && break; sleep 0.1; done
[[ -f $DALP_TMPDIR/blackhole.ready ]] || dalp_die "the black-hole listener did not start"
make_server fc "base_url 'http://127.0.0.1:$blackhole_port', connect_timeout_ms '300', max_retries '1', retry_base_ms '1'"
expect_error "SELECT count(*) FROM fc.factories;" HV00N "after 2 attempts"
ms=$(sess_ms)
((ms >= 600 && ms < 1500)) || dalp_die "connect_timeout_ms 300, 2 attempts: took $ms ms"
connect_ms=$ms
dalp_log "connect_timeout_ms 300 over 2 attempts: $connect_ms ms"

## redirects are never followed: the other origin never hears of the key
simctl --url "$other_url" clear >/dev/null
for target in "$other_url" ""; do
  faults "{\"every\": {\"redirect\": 1}, \"redirect_to\": \"$target\"}"
  expect_error "SELECT count(*) FROM fr.factories;" HV000 "was redirected to host \"127.0.0.1:" "not followed"
  [[ $(sim_log) == "302/redirect" ]] || dalp_die "redirect: the simulator saw: $(sim_log)"
done
n=$("$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$other_url" log --count)
((n == 0)) || dalp_die "the redirect target received $n requests"

## bodies: too large, not JSON, the wrong shape
# max_response_bytes counts the decoded body: a 146 kB page arrives as ~27 kB
# of gzip, under the cap, and is still refused
make_server fm "base_url '$url', max_response_bytes '100000'"
faults '{}'
expect_error "SELECT count(*) FROM (SELECT id FROM fm.events WHERE token_address = '$token' OFFSET 0) s;" 54000 \
  "GET /api/v2/tokens/$token/events?page[limit]=200" "max_response_bytes"
simctl log | "$DALP_PYTHON" -c 'import json, sys; e = json.load(sys.stdin); assert len(e) == 1 and e[0]["gzip"], e' ||
  dalp_die "max_response_bytes: expected one gzip'd request"
sess_run "ALTER SERVER fm OPTIONS (SET max_response_bytes '1000000');"
sess_run "SELECT count(*) FROM (SELECT id FROM fm.events WHERE token_address = '$token' OFFSET 0) s;"
[[ $SESS_OUT == 239 ]] || dalp_die "gzip'd pages under the cap: $SESS_OUT"
# a proxy's HTML page
faults '{"every": {"html": 1}}'
expect_error "SELECT count(*) FROM f0.factories;" HV004 "GET /api/v2/system/factories"
faults '{"every": {"wrongshape": 1}}'
expect_error "SELECT count(*) FROM f0.factories;" HV004 "GET /api/v2/system/factories"
# wrong types in an item: a clean error naming the column and the request
faults '{}'
tokens_q="SELECT count(*) || ' ' || count(symbol) || ' ' || sum(decimals) || ' ' || sum(total_supply) || ' ' || max(created_at) FROM f0.tokens;"
sess_run "$tokens_q"
tokens_ok=$SESS_OUT
for patch in '"decimals": "\"twelve\""' '"createdAt": "\"2026-13-45T99:00:00.000Z\""' \
  '"createdAt": "\"not a time\""' '"createdAt": "\"yesterday\""' '"createdAt": "\"2026-01-02T00:00:00\""' \
  '"totalSupply": "1e400000"' '"totalSupply": "{\"amount\": 1}"' '"totalSupply": "\"NaN\""' \
  '"totalSupply": "\"-Infinity\""'; do
  faults "{\"every\": {\"patch\": 1}, \"patch\": {$patch}}"
  sess_run "$tokens_q"
  col=${patch#\"}
  col=${col%%\"*}
  if [[ ! ($SESS_OUT == *"ERROR:  "2[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]:* || $SESS_OUT == *"ERROR:  HV004:"*) ||
    $SESS_OUT != *"\"$col\""* || $SESS_OUT != *"GET /api/v2/tokens"* ]]; then
    dalp_die "patch {$patch}: expected an error naming the field and the request, got: $SESS_OUT"
  fi
done
# an absent optional field is NULL, an unknown field is ignored
faults '{"every": {"patch": 1}, "patch": {"symbol": null, "brandNewField": "{\"nested\": [1, 2]}"}}'
sess_run "$tokens_q"
read -r n nsym rest <<<"$SESS_OUT"
read -r n0 _ rest0 <<<"$tokens_ok"
[[ $n == "$n0" && $nsym == 0 && $rest == "$rest0" ]] ||
  dalp_die "absent symbol / unknown field: got '$SESS_OUT', expected '$n0 0 $rest0'"

## malformed JSON every 5th request: clean errors, the backend stays up
faults '{"every": {"malformed": 5}}'
backend=$SESS_BACKEND
nerr=0
for ((i = 1; i <= 10; i++)); do
  sess_run "$scan"
  if [[ $SESS_OUT == *ERROR* ]]; then
    [[ $SESS_OUT == *"ERROR:  HV004:"* && $SESS_OUT == *"GET /api/v2/tokens/$token/events"* ]] ||
      dalp_die "malformed: unexpected error: $SESS_OUT"
    nerr=$((nerr + 1))
  else
    [[ $SESS_OUT == "$baseline" ]] || dalp_die "malformed: a scan that did not fail returned '$SESS_OUT'"
  fi
done
((nerr > 0)) || dalp_die "malformed: no scan met a malformed page"
sess_run "SELECT pg_backend_pid();"
[[ $SESS_OUT == "$backend" ]] || dalp_die "malformed: the session's backend changed ($backend -> $SESS_OUT)"
faults '{}'
sess_run "$scan"
[[ $SESS_OUT == "$baseline" ]] || dalp_die "malformed: the next scan returned '$SESS_OUT'"

## errors mid-transfer leak nothing
# A scan fails on its 2nd page (400) with its 3rd to 5th pages in flight.
# 200 of these in subtransactions (a PL/pgSQL exception block), 100 at top
# level, then: the backend's memory, its sockets, and stray requests.
sess_run "CREATE FUNCTION pg_temp.fails(q text) RETURNS bool LANGUAGE plpgsql AS \$\$
BEGIN EXECUTE q; RETURN false; EXCEPTION WHEN others THEN RETURN true; END \$\$;"
fail_scan="SELECT max(id) FROM ft.events WHERE token_address = ''$token''"
rss() { awk '/VmRSS/ {print $2}' "/proc/$SESS_BACKEND/status"; }
sockets() { find "/proc/$SESS_BACKEND/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
faults '{"every": {"400": 2}}'
# warm-up: caches, handle pool, connections
sess_run "SELECT count(*) FILTER (WHERE pg_temp.fails('$fail_scan')) FROM generate_series(1, 20);"
rss0=$(rss)
sock0=$(sockets)
sess_run "SELECT count(*) FILTER (WHERE pg_temp.fails('$fail_scan')) FROM generate_series(1, 200);" 600
[[ $SESS_OUT == 200 ]] || dalp_die "leaks: expected 200 failed scans, got: $SESS_OUT"
for ((i = 0; i < 100; i++)); do sess_send "${fail_scan//\'\'/\'};"; done
for ((i = 0; i < 100; i++)); do
  sess_wait
  [[ $SESS_OUT == *"ERROR:  "*"HTTP 400"* ]] || dalp_die "leaks: a top-level scan did not fail with 400: $SESS_OUT"
done
rss1=$(rss)
sock1=$(sockets)
growth=$((rss1 - rss0))
# nothing of the failed scans is still in flight: the next query is alone
faults '{}'
sess_run "SELECT count(*) FROM fr.factories;"
sleep 0.3
[[ $(sim_log) == "200/-" ]] || dalp_die "leaks: requests of failed scans went on: $(sim_log)"
((growth < 2048)) || dalp_die "leaks: backend memory grew by $growth kB over 300 failed scans"
((sock1 <= sock0 + 4)) || dalp_die "leaks: the backend holds $sock1 sockets after 300 failed scans ($sock0 before)"
dalp_log "300 failed scans: VmRSS $rss0 -> $rss1 kB, sockets $sock0 -> $sock1"

sess_close
if tail -c +"$((log_start + 1))" "$DALP_PGLOG" | grep -E 'terminated by signal|was terminated'; then
  dalp_die "a backend crashed (server log above)"
fi
dalp_stop_all
printf 'ok: 50 faulted scans = fault-free scan (%s 503s, %s 429s retried) in %ss; backoff gaps %s ms; Retry-After 1 s -> %s ms; 25 requests at 600/min in %s ms; 300 errors mid-transfer: RSS %+d kB, sockets %s -> %s\n' \
  "$n503" "$n429" "$scan_secs" "${backoff_gaps[*]}" "$retry_after_gap" "$rate_ms" "$growth" "$sock0" "$sock1"
