#!/usr/bin/env bash
# What a role or a server writes cannot reach the wire or the server log as
# anything but data:
#  - an api_key with CR/LF is refused, and one stored before that check (put
#    into the catalog directly) is refused when used: no request carries an
#    injected header (the simulator's request log lists every request's
#    header names);
#  - a server's error.message with line breaks and megabytes of text, a
#    value of the health summary and the accounts a snapshot's warning
#    quotes: no log line of their own, no line longer than a few hundred
#    bytes (the server log).
# Starts its own simulator, and works in a database of its own.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 44
dalp_own_database "dalp_t_hostile_$$"
log_start=$(wc -c <"$DALP_PGLOG")

dalp_sim_server h "$url" "max_retries '0'"
dalp_psql -q <<SQL
CREATE FOREIGN TABLE h_factories (name text) SERVER h OPTIONS (resource 'factories');
CREATE FOREIGN TABLE h_tokens (address text, symbol text) SERVER h OPTIONS (resource 'tokens');
SQL
token=$(dalp_token h_tokens RDEP)

# The header names of the requests logged since the last clear, one line each.
sim_headers() {
  simctl log | "$DALP_PYTHON" -c '
import json, sys
for e in json.load(sys.stdin):
    print(" ".join(e["headers"]))'
}

# psql's output (errors included) of SQL; never fails.
try_sql() { dalp_psql -qtA -c "$1" 2>&1 || true; }

# 1. Header injection through api_key.
simctl clear >/dev/null
set_key=$(try_sql "ALTER USER MAPPING FOR CURRENT_USER SERVER h OPTIONS (SET api_key E'$DALP_API_KEY\\r\\nX-Injected: yes')")
try_sql "SELECT count(*) FROM h_factories" >/dev/null
if sim_headers | grep -i 'x-injected'; then
  dalp_die "a request carried an injected header (its header names above)"
fi
[[ $set_key == *'must not contain control characters'* ]] || dalp_die "api_key with CR/LF: $set_key"
# a mapping stored before the check: refused when used, before any request
dalp_psql -q -c "UPDATE pg_user_mapping SET umoptions = ARRAY[E'api_key=$DALP_API_KEY\\r\\nX-Injected: yes']
                  WHERE umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'h')"
out=$(try_sql "SELECT count(*) FROM h_factories")
[[ $out == *'contains a control character'* && $out != *"$DALP_API_KEY"* ]] ||
  dalp_die "a stored api_key with CR/LF, when used: $out"
headers=$(sim_headers)
[[ $(wc -l <<<"$headers") == 1 && $headers == *X-Api-Key* ]] ||
  dalp_die "expected the one request of the valid mapping, the simulator logged: $headers"
if grep -qi 'x-injected' <<<"$headers"; then
  dalp_die "a request carried an injected header: $headers"
fi
dalp_psql -q -c "ALTER USER MAPPING FOR CURRENT_USER SERVER h OPTIONS (SET api_key '$DALP_API_KEY')"
dalp_log "an api_key with CR/LF: refused when set and when used; no injected header reached the API"

# 2. A server's error.message: line breaks that would start a log line of
# their own, then 2 MB.
forged='2026-05-01 12:00:00.000 UTC [42] LOG:  forged by the server'
"$DALP_PYTHON" -c '
import json, sys
print(json.dumps({"every": {"500": 1}, "path_prefix": "/api/v2/system/",
                  "error_message": "Internal error.\r\n" + sys.argv[1] + "\n" + "x" * (2 << 20)}))' "$forged" |
  simctl faults - >/dev/null
out=$(try_sql "SELECT count(*) FROM h_factories")
[[ $out == *'HTTP 500'* ]] || dalp_die "a 500 with a hostile message: $out"
((${#out} < 1000)) || dalp_die "a 500 with a 2 MB message: the error is ${#out} bytes long"

# 3. A status in the health summary, reported as the reason a snapshot is
# refused.
simctl faults "$("$DALP_PYTHON" -c '
import json, sys
svc = {"serviceType": "indexer", "chainId": 1, "networkName": "sim", "status": "critical\n" + sys.argv[1] + "\n" + "s" * 5000,
       "blockHeight": "1", "chainHeadBlock": "1", "syncLag": 0, "finalityLagBlocks": 0, "blockAgeSeconds": 0,
       "stallSeconds": 0, "reindexing": False, "updatedAt": "2026-05-01T00:00:00.000Z"}
print(json.dumps({"every": {"patch": 1}, "path_prefix": "/api/v2/blockchain-monitoring/",
                  "patch": {"services": json.dumps([svc])}}))' "$forged")" >/dev/null
out=$(try_sql "SELECT dalp_fdw.take_snapshot('h', '$token', '2026-06-01 00:00:00+00')")
[[ $out == *'is not ready: the indexer reports status critical\n'* ]] ||
  dalp_die "a snapshot with a hostile indexer status: $out"

# 4. Accounts in /holders that the replay does not know: the snapshot's
# warning quotes them.
simctl faults "$("$DALP_PYTHON" -c '
import json, sys
print(json.dumps({"every": {"patch": 1}, "path_prefix": "/api/v2/tokens/" + sys.argv[2] + "/holders",
                  "patch": {"account": json.dumps({"id": "\r\n" + sys.argv[1] + "\n" + "a" * 5000})}}))' \
  "$forged" "$token")" >/dev/null
out=$(try_sql "SELECT dalp_fdw.take_snapshot('h', '$token', '2026-06-01 00:00:00+00')")
[[ $out == *'does not reconcile'*'DETAIL:'*'\r\n2026-05-01'* ]] || dalp_die "a snapshot with hostile holders: $out"
simctl faults '{}' >/dev/null

# The server log: the messages above are there, each on its lines, and
# nothing the server wrote starts a line or fills one.
sleep 0.5 # the logging collector may lag
log=$(tail -c +"$((log_start + 1))" "$DALP_PGLOG")
for what in 'HTTP 500' 'reports status critical' 'does not reconcile'; do
  grep -q "$what" <<<"$log" || dalp_die "the server log does not have the message with '$what'"
done
forged_lines=$(awk -v s="$forged" 'index($0, s) == 1' <<<"$log" | wc -l)
((forged_lines == 0)) || dalp_die "the server log has $forged_lines lines the DALP server wrote"
longest=$(awk '{ if (length($0) > n) n = length($0) } END { print n + 0 }' <<<"$log")
((longest < 2000)) || dalp_die "the server log has a line of $longest bytes"

printf 'ok: CR/LF in api_key refused when set and used, no injected header sent; server text in 3 messages: no forged log line, longest log line %s bytes\n' "$longest"
