#!/usr/bin/env bash
# Work whose size a server chooses stays linear and cancellable.  A server
# that lists 200,000 tokens (the simulator's "listing" fixture) has them
# deduplicated for a fan-out well under a second; 200,000 facet values,
# listed in meta.facets or counted page by page, come out as fast; repeats
# in the listing are read once; and a cancel anywhere in a long listing ends
# the query within a second.  The simulator's request log times the work
# between two requests; pg_cancel_backend times the cancels.  Starts its
# own simulator.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

dalp_own_sim 43
extra=200000

dalp_psql -q <<SQL
SET client_min_messages = warning;
DROP SERVER IF EXISTS u_sim CASCADE;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
-- pages of 200,000 tokens (and as many facet values) in one answer: allowed
CREATE SERVER u_sim FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', page_size '5', max_response_bytes '268435456');
CREATE USER MAPPING FOR CURRENT_USER SERVER u_sim OPTIONS (api_key '$DALP_API_KEY');
CREATE FOREIGN TABLE u_events (id text) SERVER u_sim OPTIONS (resource 'events');
CREATE FOREIGN TABLE u_tokens (address text, type text) SERVER u_sim OPTIONS (resource 'tokens');
SQL

# A test that fails while the session's query still runs terminates its
# backend (which, if it ignores interrupts, goes on until it checks them).
end_session_backend() {
  [[ -z $SESS_BACKEND ]] || dalp_psql -qAtc "SELECT pg_terminate_backend($SESS_BACKEND)" >/dev/null 2>&1 || true
}
dalp_atexit end_session_backend

# The request log as "seq start_ms end_ms path rows" lines.
sim_log() {
  simctl log | "$DALP_PYTHON" -c '
import json, sys
for e in json.load(sys.stdin):
    print(e["seq"], e["start_ms"], e["end_ms"], e["path"], e["rows"])'
}

sess_open
ntokens=$(dalp_psql -qAtc "SELECT count(*) FROM u_tokens")
nevents=$(dalp_psql -qAtc "SELECT count(*) FROM u_events")
ntypes=$(dalp_psql -qAtc "SELECT count(DISTINCT type) FROM u_tokens")
((ntokens > 1 && nevents > 0)) || dalp_die "the simulator lists $ntokens tokens, $nevents events"

# 1. Each token listed three times in a row, across pages of 5: the
# fan-out still reads each token once.
simctl faults '{"listing": {"repeat": 3}}' >/dev/null
simctl clear >/dev/null
n=$(dalp_psql -qAtc "SELECT count(*) FROM u_events")
[[ $n == "$nevents" ]] || dalp_die "a listing with repeats: count(*) $n, expected $nevents"
per_token=$(sim_log | grep -c ' /api/v2/tokens/0x[0-9a-f]*/events ' || true)
((per_token == ntokens)) ||
  dalp_die "a listing with repeats: $per_token requests for events, expected one per token ($ntokens)"
dalp_log "a listing of each token 3 times: $ntokens tokens read once each"

# 2. 200,000 more tokens, in pages of 20,000: deduplicated between the
# listing's last answer and the first request for a token's events.  (In
# one page of 35 MB, json-c's half a second of parsing the end of the
# page would be measured too.)
simctl faults "{\"listing\": {\"extra\": $extra, \"page_items\": 20000}}" >/dev/null
simctl clear >/dev/null
sess_run "SELECT id FROM u_events LIMIT 1;" 60
[[ $SESS_OUT == evt_* ]] || dalp_die "the fan-out after a listing of $extra tokens: $SESS_OUT"
read -r listing_end first_token_start < <(sim_log | "$DALP_PYTHON" -c '
import sys
rows = [l.split() for l in sys.stdin]
listing = [r for r in rows if r[3] == "/api/v2/tokens"]
events = [r for r in rows if r[3].endswith("/events")]
assert sum(int(r[4]) for r in listing) > 200000, rows[:3]
print(max(float(r[2]) for r in listing), min(float(r[1]) for r in events))')
dedupe_ms=$("$DALP_PYTHON" -c "print(round($first_token_start - $listing_end))")
((dedupe_ms < 1000)) ||
  dalp_die "from the end of a listing of $extra tokens to the next request: $dedupe_ms ms (limit 1000)"
dalp_log "a listing of $extra tokens: decoded and deduplicated in $dedupe_ms ms"

# 3. 200,000 facet values in meta.facets, and 4. counted page by page
# (meta.facets {}): one group each, in a few seconds.
expect="$((extra + ntypes)) $((extra + ntokens))"
simctl faults "{\"listing\": {\"extra\": $extra, \"facets\": true}}" >/dev/null
sess_run "SELECT count(*) || ' ' || sum(n) FROM (SELECT type, count(*) AS n FROM u_tokens GROUP BY type) g;" 60
[[ $SESS_OUT == "$expect" ]] || dalp_die "$extra facet values in meta.facets: '$SESS_OUT', expected '$expect'"
facets_ms=$(sess_ms)
simctl faults "{\"listing\": {\"extra\": $extra, \"page_items\": 1000000}}" >/dev/null
sess_run "SELECT count(*) || ' ' || sum(n) FROM (SELECT type, count(*) AS n FROM u_tokens GROUP BY type) g;" 60
[[ $SESS_OUT == "$expect" ]] || dalp_die "$extra facet values counted by paging: '$SESS_OUT', expected '$expect'"
counted_ms=$(sess_ms)
((facets_ms < 5000 && counted_ms < 5000)) ||
  dalp_die "$extra facet values: $facets_ms ms from meta.facets, $counted_ms ms counted by paging (limit 5000 each)"
dalp_log "$extra facet values: $facets_ms ms from meta.facets, $counted_ms ms counted by paging"

# 5. A cancel anywhere in a listing of 10 pages of 20,000 tokens, each
# answered after 100 ms, ends the query within a second; after the listing
# the first token's events take 10 s, so the query is still running.
simctl faults "{\"listing\": {\"extra\": $extra, \"page_items\": 20000}, \"latency_ms\": 100}" >/dev/null
sess_run "SELECT id FROM u_events LIMIT 1;" 60
listing_ms=$(sess_ms)
simctl faults "{\"listing\": {\"extra\": $extra, \"page_items\": 20000}, \"latency_ms\": 100,
                \"path_prefix\": \"/api/v2/tokens/\", \"every\": {\"slow\": 1}, \"slow_ms\": 10000}" >/dev/null
latencies=()
for tenth in 1 2 3 4 5 6 7 8 9 11; do
  delay_ms=$((listing_ms * tenth / 10))
  sess_send "SELECT id FROM u_events LIMIT 1;"
  sleep "$("$DALP_PYTHON" -c "print($delay_ms / 1000)")"
  t0=$(_sess_now_ms)
  [[ $(dalp_psql -qAtc "SELECT pg_cancel_backend($SESS_BACKEND)") == t ]] || dalp_die "pg_cancel_backend failed"
  sess_wait 5
  latency=$(($(_sess_now_ms) - t0))
  [[ $SESS_OUT == *"ERROR:  57014"* ]] ||
    dalp_die "a cancel $delay_ms ms into the listing: expected SQLSTATE 57014, got: $SESS_OUT"
  ((latency < 1000)) ||
    dalp_die "a cancel $delay_ms ms into the listing ended the query $latency ms later (limit 1000)"
  latencies+=("$delay_ms:$latency")
done
simctl faults '{}' >/dev/null
sess_run "SELECT count(*) FROM u_tokens;"
[[ $SESS_OUT == "$ntokens" ]] || dalp_die "the session after the cancels: $SESS_OUT"
sess_close

printf 'ok: %s tokens deduplicated in %s ms; %s facet values in %s ms (meta.facets) and %s ms (counted); cancels in a %s ms listing, at:after ms: %s\n' \
  "$extra" "$dedupe_ms" "$extra" "$facets_ms" "$counted_ms" "$listing_ms" "${latencies[*]}"
