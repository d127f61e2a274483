#!/usr/bin/env bash
# test/demo.sh: dalp_fdw in two screens, on a fresh Debian 12 machine (as root
# or as a user with sudo). Installs what is missing, builds and installs the
# extension, starts a throwaway PostgreSQL 15 and the DALP simulator on
# 127.0.0.1, imports the API's tables, then shows, each step saying in one
# line what it shows:
#   1. the tokens
#   2. a cap table: the top 10 holders and the total
#   3. what a filtered, sorted, limited query sent to the API (EXPLAIN)
#   4. a record-date snapshot into a table of ours, and its reconciliation
#   5. a materialized view of the cap table, refreshed concurrently after new
#      activity on the chain
# Stops what it started when done.
#
# Usage: test/demo.sh [--keep]
#   --keep  leave the cluster and simulator running (and print how to connect)
#           until Ctrl-C
# DALP_DEMO_ATTACH=1 skips the set-up and uses the cluster and simulator that
# the environment names (PGHOST/PGPORT, DALP_SIM_URL): run_all.sh does this.
# The simulator is then put back in its seeded state at the end.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=
case ${1:-} in
  --keep) keep=1 ;;
  '') ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

attached=
if [[ ${DALP_DEMO_ATTACH:-} == 1 ]]; then
  [[ -n ${PGPORT:-} && -n ${DALP_SIM_URL:-} ]] ||
    dalp_die "DALP_DEMO_ATTACH=1 needs PGHOST/PGPORT and DALP_SIM_URL of a running set-up"
  attached=1
else
  dalp_setup
fi
simctl() { "$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$DALP_SIM_URL" "$@"; }

# A database of its own, so the demo runs the same beside other tests.
db=dalp_demo
dalp_psql -q -d postgres -c 'SET client_min_messages = warning' \
  -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
demo_psql() {
  PGOPTIONS='-c client_min_messages=warning -c TimeZone=UTC' \
    dalp_psql -q -P pager=off -P footer=off -d "$db" -v url="$DALP_SIM_URL" -v key="$DALP_API_KEY" "$@"
}

token=$(demo_psql -tA <<'SQL'
CREATE EXTENSION dalp_fdw;
CREATE SERVER dalp FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'url');
CREATE USER MAPPING FOR CURRENT_USER SERVER dalp OPTIONS (api_key :'key');
CREATE SCHEMA dalp;
IMPORT FOREIGN SCHEMA v2 FROM SERVER dalp INTO dalp;
-- 0x1234…abcd: an address short enough for one line
CREATE FUNCTION short(address text) RETURNS text IMMUTABLE
  RETURN left(address, 6) || '…' || right(address, 4);
-- the "DALP Request:" lines of a query's plan: what it sends to the API
CREATE FUNCTION sent(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || query LOOP
    IF line LIKE '%DALP Request:%' THEN RETURN NEXT btrim(line); END IF;
  END LOOP;
END $$;
-- the demo fails (run_all.sh runs it) when a step does not show what it says
CREATE FUNCTION expect(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF ok IS NOT TRUE THEN RAISE EXCEPTION 'demo: expected %', what; END IF;
END $$;
SELECT address FROM dalp.tokens WHERE symbol = 'HIF';
SQL
)
[[ $token =~ ^0x[0-9a-f]{40}$ ]] || dalp_die "the simulator has no token HIF (got '$token')"

demo_psql -v token="$token" <<'SQL'
\echo
\echo '1. The tokens: IMPORT FOREIGN SCHEMA made each API collection a table; this is GET /api/v2/tokens'
SELECT symbol, name, type, decimals, total_supply FROM dalp.tokens ORDER BY type, symbol;

SELECT format('2. Cap table of %s (%s): the top 10 holders, and the total of all of them', symbol, name) AS title
  FROM dalp.tokens WHERE address = :'token' \gset
\echo :title
WITH h AS (SELECT account, balance, row_number() OVER (ORDER BY balance DESC, account) AS rank
             FROM dalp.holders WHERE token_address = :'token')
SELECT rank, account, balance, round(100 * balance / (SELECT sum(balance) FROM h), 2) AS "share %"
  FROM h WHERE rank <= 10
UNION ALL
SELECT NULL, 'total of ' || count(*) || ' holders', sum(balance), 100 FROM h
ORDER BY rank NULLS LAST;

SELECT format($q$SELECT block_timestamp, short(from_address) AS "from", short(to_address) AS "to", amount AS "amount (base units)"
  FROM dalp.events
 WHERE token_address = %L AND event_name = 'TransferCompleted'
 ORDER BY block_timestamp DESC LIMIT 5$q$, :'token') AS query \gset
\echo '3. What was sent to the API: the filter, the sort and the limit went into the one request (EXPLAIN VERBOSE)'
\echo :query
\t on
SELECT * FROM sent(:'query');
\t off
:query;
SELECT expect(count(*) = 1, 'one request with the filter, the sort and the limit') FROM sent(:'query') AS line
 WHERE line LIKE '%page[limit]=5&sort=-blockTimestamp&filter[eventName][eq]=TransferCompleted' \gset

SELECT date_trunc('month', block_timestamp) - interval '1 second' AS record_time
  FROM dalp.events WHERE token_address = :'token' ORDER BY block_timestamp DESC LIMIT 1 \gset
\echo '4. A record-date snapshot: the balances at' :record_time 'rebuilt from the events into a table of ours, reconciled with /holders'
CREATE TABLE dividend_record (account text PRIMARY KEY, balance numeric, balance_exact numeric);
SELECT dalp_fdw.take_snapshot('dalp', :'token', :'record_time', into_table => 'dividend_record') AS snapshot \gset
\x on
SELECT s.id AS snapshot, s.record_block, s.events_replayed, s.holders,
       (SELECT count(*) FROM dividend_record) AS "rows in dividend_record", s.supply,
       CASE WHEN s.reconciled THEN 'reconciled: the same replay carried to now equals /holders, account by account'
            ELSE 'NOT reconciled: ' || s.mismatches || ' accounts differ from /holders' END AS verdict
  FROM dalp_fdw.snapshots s WHERE s.id = :snapshot;
\x off
SELECT expect(reconciled AND holders > 0, 'a reconciled snapshot with holders') FROM dalp_fdw.snapshots
 WHERE id = :snapshot \gset

\echo '5. A materialized view of the cap table, refreshed CONCURRENTLY (readers are not blocked): the holders it changed'
CREATE MATERIALIZED VIEW cap_table AS
  SELECT account, balance FROM dalp.holders WHERE token_address = :'token';
CREATE UNIQUE INDEX ON cap_table (account);
CREATE TABLE cap_table_before AS TABLE cap_table;
SQL

echo "   (the simulator adds 6 events to ${token:0:6}…${token: -4}: new activity on the chain)"
simctl append "$token" 6 >/dev/null

demo_psql <<'SQL'
REFRESH MATERIALIZED VIEW CONCURRENTLY cap_table;
SELECT short(account) AS account, b.balance AS before, a.balance AS after
  FROM cap_table a FULL JOIN cap_table_before b USING (account)
 WHERE a.balance IS DISTINCT FROM b.balance
 ORDER BY account;
SELECT expect(count(*) > 0, 'the refresh to change some holder') FROM cap_table a FULL JOIN cap_table_before b USING (account)
 WHERE a.balance IS DISTINCT FROM b.balance \gset
SQL

if [[ -n $attached ]]; then
  simctl reset >/dev/null
fi

if [[ -n $keep ]]; then
  cat <<EOF

The cluster and the simulator keep running until Ctrl-C. In another shell:
  $DALP_PGBIN/psql -h $PGHOST -p $PGPORT -U postgres $db
  curl -H 'X-Api-Key: $DALP_API_KEY' $DALP_SIM_URL/api/v2/tokens
EOF
  # `wait` (unlike a plain sleep) lets a kill end the demo at once
  sleeper=
  trap 'kill $sleeper 2>/dev/null; exit 0' INT TERM
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper" || true
  done
fi
