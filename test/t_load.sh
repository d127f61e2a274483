#!/usr/bin/env bash
# Load: pgbench, 8 clients, prepared statements, a mix of dalp_fdw queries
# (latest events, counts, facet counts, filtered full scans, top holders,
# token lookups) for DALP_LOAD_SECONDS (default 20; 60 for the figures in
# the issue) against a simulator of its own answering every 7th request 503
# and every 11th 429 (Retry-After: 1, capped at 100 ms by the server's
# retry_after_max_ms).  The simulator counts the requests of all clients
# together: without "spare_ms" a retry lands on whatever slot the other
# clients' requests left it, and is faulted again about one time in seven
# (measured: 1,244 of 8,545 retries in 60 s), so about one faulted request
# in 15,000 failed all 6 attempts (max_retries 5) and aborted its client, in
# about one run of 20 s in eight; with the budget shared by the cluster the
# backends take turns, so a retry can fall on the same slot modulo 7 each
# time (503s at requests 168, 182, 196 and 217 of one request, then a 429).
# That is what bounded retries do against faults counted this way, not a
# defect of dalp_fdw's retries: attempts are counted per request,
# backoffs have jitter, and what backends share (the request budget, a 429's
# Retry-After hold) delays a request without taking any of its attempts.
# This test is about transient faults, so the simulator answers the retry of
# a faulted request: the same path and query within 2 s (a retry here comes
# after a backoff of at most 20 ms or a hold of 100 ms, and its turn in the
# shared budget).  Every transaction checks its answer against one computed
# before the faults were switched on, and raises an error if they differ, so
# zero failed transactions means every answer was complete and right.
# Reports the throughput.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=${DALP_LOAD_SECONDS:-20}
# where this test's part of the server log starts
log_start=$(wc -c <"$DALP_PGLOG")
clients=8
dalp_own_sim 37

dalp_sim_schema lt "$url" "retry_base_ms '20', retry_after_max_ms '100'" "tokens, events, holders"
dalp_psql -q <<SQL
-- fails the transaction (and so counts as a failed one) on a wrong answer
CREATE FUNCTION lt.check(ok boolean, what text) RETURNS int LANGUAGE plpgsql AS \$\$
BEGIN
  IF ok IS NOT TRUE THEN
    RAISE EXCEPTION 'wrong answer: %', what;
  END IF;
  RETURN 1;
END \$\$;

-- the right answers, read before any fault
CREATE TABLE lt.expect AS
SELECT (row_number() OVER (ORDER BY t.address) - 1)::int AS i, t.address AS tok, t.name,
  (SELECT count(*) FROM lt.events e WHERE e.token_address = t.address) AS nevents,
  (SELECT string_agg(id, ',') FROM (SELECT id FROM lt.events e WHERE e.token_address = t.address
     ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC LIMIT 5) s) AS recent,
  (SELECT string_agg(event_name || '=' || n, ',' ORDER BY event_name) FROM
     (SELECT event_name, count(*) AS n FROM lt.events e WHERE e.token_address = t.address
       GROUP BY event_name) s) AS facets,
  (SELECT coalesce(sum(amount), 0)::text FROM lt.events e
    WHERE e.token_address = t.address AND e.event_name = 'TransferCompleted') AS transferred,
  (SELECT string_agg(account, ',' ORDER BY balance DESC, account) FROM
     (SELECT account, balance FROM lt.holders h WHERE h.token_address = t.address
       ORDER BY balance DESC, account LIMIT 10) s) AS top
FROM lt.tokens t;
SQL
ntok=$(dalp_psql -tAc "SELECT count(*) FROM lt.expect WHERE nevents > 0 AND top IS NOT NULL")
((ntok >= 5)) || dalp_die "expected at least 5 tokens with events and holders, got $ntok"

# One script per kind of query; each picks a token at random.
pick="\\set i random(0, $((ntok - 1)))
SELECT tok, name, nevents, recent, facets, transferred, top FROM lt.expect WHERE i = :i \\gset"
script() { printf '%s\n%s\n' "$pick" "$2" >"$DALP_TMPDIR/$1.sql"; }
script recent "SELECT lt.check(string_agg(id, ',') = :recent, 'latest events') FROM (SELECT id FROM lt.events
  WHERE token_address = :tok ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC LIMIT 5) s;"
script count "SELECT lt.check(count(*) = :nevents, 'event count') FROM lt.events WHERE token_address = :tok;"
script facets "SELECT lt.check(string_agg(event_name || '=' || n, ',' ORDER BY event_name) = :facets, 'facets')
  FROM (SELECT event_name, count(*) AS n FROM lt.events WHERE token_address = :tok GROUP BY event_name) s;"
script transferred "SELECT lt.check(coalesce(sum(amount), 0)::text = :transferred, 'transferred amount')
  FROM lt.events WHERE token_address = :tok AND event_name = 'TransferCompleted';"
script top "SELECT lt.check(string_agg(account, ',' ORDER BY balance DESC, account) = :top, 'top holders')
  FROM (SELECT account, balance FROM lt.holders WHERE token_address = :tok ORDER BY balance DESC, account LIMIT 10) s;"
script token "SELECT lt.check(name = :name, 'token by address') FROM lt.tokens WHERE address = :tok;"

simctl faults '{"every": {"503": 7, "429": 11}, "retry_after": 1, "spare_ms": 2000}' >/dev/null
simctl clear >/dev/null
dalp_log "pgbench: $clients clients, -M prepared, ${seconds}s, faults on"
rc=0
"$DALP_PGBIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$seconds" \
  -f "$DALP_TMPDIR/recent.sql@3" -f "$DALP_TMPDIR/count.sql@2" -f "$DALP_TMPDIR/facets.sql@2" \
  -f "$DALP_TMPDIR/transferred.sql@1" -f "$DALP_TMPDIR/top.sql@2" -f "$DALP_TMPDIR/token.sql@2" \
  >"$DALP_TMPDIR/pgbench.out" 2>&1 || rc=$?
cat "$DALP_TMPDIR/pgbench.out"
((rc == 0)) || dalp_die "pgbench exited with $rc (a client aborted: output above)"
grep -q 'aborted' "$DALP_TMPDIR/pgbench.out" && dalp_die "a pgbench client aborted (output above)"
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$DALP_TMPDIR/pgbench.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$DALP_TMPDIR/pgbench.out")
tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$DALP_TMPDIR/pgbench.out")
[[ -n $processed && -n $tps ]] || dalp_die "cannot read pgbench's figures (output above)"
[[ ${failed:-0} == 0 ]] || dalp_die "$failed failed transactions"
((processed > 0)) || dalp_die "no transaction completed"

# the faults were there, and were absorbed
read -r nreq n503 n429 <<<"$(simctl log | "$DALP_PYTHON" -c 'import json, sys
log = json.load(sys.stdin)
print(len(log), sum(e["status"] == 503 for e in log), sum(e["status"] == 429 for e in log))')"
((n503 > 0 && n429 > 0)) || dalp_die "no fault was injected: $nreq requests, $n503 503s, $n429 429s"
# the control: a wrong answer does fail a transaction
simctl faults '{"every": {"patch": 1}, "patch": {"name": "\"Not the name\""}}' >/dev/null
if "$DALP_PGBIN/pgbench" -n -M prepared -t 1 -f "$DALP_TMPDIR/token.sql" >"$DALP_TMPDIR/control.out" 2>&1 ||
  ! grep -q 'wrong answer: token by address' "$DALP_TMPDIR/control.out"; then
  cat "$DALP_TMPDIR/control.out"
  dalp_die "a wrong answer went unnoticed by the transaction's check (output above)"
fi
simctl faults '{}' >/dev/null
if tail -c +"$((log_start + 1))" "$DALP_PGLOG" | grep -E 'terminated by signal|was terminated'; then
  dalp_die "a backend crashed (server log above)"
fi
dalp_stop_all
printf 'ok: pgbench %d clients -M prepared %ss with faults: %s transactions, 0 failed, %s tps; %s API requests, %s 503s and %s 429s retried\n' \
  "$clients" "$seconds" "$processed" "$tps" "$nreq" "$n503" "$n429"
