#!/usr/bin/env bash
# Requests in flight together, from the simulator's request log (when each
# request started and ended), against a simulator of its own that answers
# every request 100 ms late, with pages of 50 and concurrency 8:
#   - a scan whose every row is wanted sends its first page alone, then the
#     next 8 pages together; under a LIMIT the window grows by one with
#     each page consumed (2 after the first), so a LIMIT that stops early
#     costs no burst of unread pages;
#   - a fan-out over a list of tokens from a local table
#     (= ANY (ARRAY(SELECT ...))) reads 8 tokens at once; in a fan-out over
#     every token, a token of many pages still has 8 requests in flight
#     (the later tokens' first pages, arrived early, hold no slot);
#   - a join of tokens to holders read as one scan sends the tokens request
#     first, then 8 of the holders requests at once; a count over the join
#     likewise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 44 --small-tokens 12

# How many of the requests logged since the last clear (those whose path
# ends with $2, if given), from the Nth on, started within 50 ms of the Nth
# (each takes 100 ms), and how many there are: "8 of 59". (A query that
# stopped early leaves requests in flight: they are logged when they end,
# after the next clear.)
overlap() {
  simctl log | "$DALP_PYTHON" -c 'import json, sys
log = [e for e in json.load(sys.stdin) if e["path"].endswith(sys.argv[2])][int(sys.argv[1]):]
print("%d of %d" % (sum(e["start_ms"] < log[0]["start_ms"] + 50 for e in log), len(log)))' "$1" "${2:-}"
}

dalp_sim_schema nw "$url" "page_size '50', concurrency '8'"
dalp_psql -qc "CREATE TABLE nw.my_tokens AS SELECT address AS addr FROM nw.tokens WHERE symbol LIKE 'SML%'"
hif=$(dalp_psql -tAc "SELECT address FROM nw.tokens WHERE symbol = 'HIF'")
simctl faults '{"latency_ms": 100}' >/dev/null

## every row wanted: the first page, then 8 at once
simctl clear >/dev/null
dalp_psql -tAc "SELECT count(id) FROM nw.events WHERE token_address = '$hif'" >/dev/null
got=$(overlap 1)
[[ $got == "8 of "* ]] || dalp_die "every row wanted: after the first page, expected 8 requests at once, saw $got"
dalp_log "every row wanted: after the first page, $got requests at once"
# under a LIMIT (amount > 0 stays local, so the LIMIT is not sent): one
# more page at a time
simctl clear >/dev/null
dalp_psql -tAc "SELECT count(*) FROM (SELECT id FROM nw.events WHERE token_address = '$hif'
                  AND amount > 0 LIMIT 400) s" >/dev/null
got=$(overlap 1)
[[ $got == "2 of "* ]] || dalp_die "under a LIMIT: after the first page, expected 2 requests at once (the window grows by one a page), saw $got"
dalp_log "under a LIMIT: after the first page, $got requests at once"

## a local list of tokens: 8 at once
simctl clear >/dev/null
dalp_psql -tAc "SELECT count(*) FROM nw.holders WHERE token_address = ANY (ARRAY(SELECT addr FROM nw.my_tokens))" >/dev/null
got=$(overlap 0 /holders) # after the LIMIT above
[[ $got == "8 of 12" ]] || dalp_die "12 tokens listed in a local table: expected 8 requests at once, saw $got"
dalp_log "12 tokens listed in a local table: $got requests at once"
simctl clear >/dev/null
dalp_psql -tAc "SELECT count(id) FROM nw.events" >/dev/null
# from the first of HIF's 60 pages to the last: 8 at a time take 8 rounds
# of 100 ms, one at a time 6 s
got=$(simctl log | "$DALP_PYTHON" -c 'import json, sys
hif = [e for e in json.load(sys.stdin) if e["path"] == "/api/v2/tokens/%s/events" % sys.argv[1]]
print("%d %d" % (len(hif), max(e["end_ms"] for e in hif) - min(e["start_ms"] for e in hif)))' "$hif")
read -r pages span <<<"$got"
((pages == 60 && span < 2000)) ||
  dalp_die "a fan-out over every token: HIF's $pages pages took $span ms, expected about 8 rounds of 100 ms"
dalp_log "a fan-out over every token: HIF's $pages pages in $span ms"

## a join read as one scan: the outer request, then 8 inner tokens at once
join="FROM nw.tokens t JOIN nw.holders h ON h.token_address = t.address WHERE t.name ILIKE 'Small Deposit%'"
plan=$(dalp_psql -tAc "EXPLAIN (VERBOSE, COSTS OFF) SELECT t.symbol, h.account $join")
[[ $plan == "Foreign Scan"* && $plan == *"{each t.address}/holders"* ]] ||
  dalp_die "tokens to holders: expected one foreign scan, the plan is: $plan"
for what in "t.symbol, h.account" "count(*)"; do
  simctl clear >/dev/null
  dalp_psql -tAc "SELECT $what $join" >/dev/null
  first=$(simctl log | "$DALP_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["path"])')
  got=$(overlap 1)
  [[ $first == /api/v2/tokens && $got == "8 of 12" ]] ||
    dalp_die "tokens to holders ($what): expected the tokens request, then 8 of 12 at once; saw $first, then $got"
done
dalp_log "tokens to holders, rows and a count: the tokens request, then $got holders requests at once"
echo "ok: after the first page 8 requests at once when every row is wanted, 2 under a LIMIT; 8 of 12 listed tokens at once; a fan-out reads a token of 60 pages in $span ms; a join: the outer request, then 8 of 12 inner tokens at once"
