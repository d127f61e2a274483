#!/usr/bin/env bash
# test/demo.sh: dalp_fdw end to end, on a fresh Debian 12 machine as root.
# Installs what is missing, builds and installs the extension, starts a
# throwaway PostgreSQL 15 and the DALP simulator on 127.0.0.1, imports the
# API's tables, then prints a cap table, the last events of that token and
# the tokens by type. Stops what it started when done.
#
# Usage: test/demo.sh [--keep]
#   --keep  leave the cluster and simulator running (and print how to connect)
#           until Ctrl-C
# DALP_DEMO_ATTACH=1 skips the set-up and uses the cluster and simulator that
# the environment names (PGHOST/PGPORT, DALP_SIM_URL): run_all.sh does this.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=
case ${1:-} in
  --keep) keep=1 ;;
  '') ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

if [[ ${DALP_DEMO_ATTACH:-} == 1 ]]; then
  [[ -n ${PGPORT:-} && -n ${DALP_SIM_URL:-} ]] ||
    dalp_die "DALP_DEMO_ATTACH=1 needs PGHOST/PGPORT and DALP_SIM_URL of a running set-up"
else
  dalp_setup
fi

# A database of its own, so the demo runs the same beside other tests.
db=dalp_demo
dalp_psql -q -d postgres -c 'SET client_min_messages = warning' \
  -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"

dalp_psql -q -P pager=off -d "$db" -v url="$DALP_SIM_URL" -v key="$DALP_API_KEY" <<'SQL'
CREATE EXTENSION dalp_fdw;
CREATE SERVER dalp FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'url');
CREATE USER MAPPING FOR CURRENT_USER SERVER dalp OPTIONS (api_key :'key');
CREATE SCHEMA dalp;
IMPORT FOREIGN SCHEMA v2 FROM SERVER dalp INTO dalp;

\echo
\echo '== The token with the most holders'
CREATE TEMP TABLE demo_token AS
  SELECT t.address, t.symbol, t.name, t.type,
         (SELECT count(*) FROM dalp.holders h WHERE h.token_address = t.address) AS holders
    FROM dalp.tokens t
   ORDER BY holders DESC, t.symbol
   LIMIT 1;
TABLE demo_token;
SELECT address AS token, symbol FROM demo_token \gset

\echo
\echo '== Cap table of' :symbol
SELECT account, balance, available, frozen
  FROM dalp.holders
 WHERE token_address = :'token'
 ORDER BY balance DESC;

\echo
\echo '== Last 5 events of' :symbol
SELECT block_timestamp, event_name, from_address, to_address, amount, transaction_hash
  FROM dalp.events
 WHERE token_address = :'token'
 ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC
 LIMIT 5;

\echo
\echo '== Tokens by type'
SELECT type, count(*) AS tokens FROM dalp.tokens GROUP BY type ORDER BY type;
SQL

if [[ -n $keep ]]; then
  cat <<EOF
The cluster and the simulator keep running until Ctrl-C. In another shell:
  $DALP_PGBIN/psql -h $PGHOST -p $PGPORT -U postgres $db
  curl -H 'X-Api-Key: $DALP_API_KEY' $DALP_SIM_URL/api/v2/tokens
EOF
  trap 'exit 0' INT TERM
  while :; do sleep 3600; done
fi
