#!/usr/bin/env bash
# The API key never leaks.  Against a simulator of its own, with a key no
# other test uses and "echo_key" on (every error body quotes the key, as a
# careless server might), it provokes every error status and failure
# (400 401 403 404 422 429 500 502 503 504, a reset, a timeout, a cancel, a
# refused connection, a redirect, a body too large, not JSON, the wrong
# shape, a bad value), with client_min_messages and log_min_messages at
# debug5 and verbose errors, and also runs EXPLAIN (ANALYZE, VERBOSE) and
# dalp_fdw.stats().  Then the key (and a wrong key of another mapping) must
# be in none of: what the client received, pg_stat_activity and the process
# title during a request, and the server log (which also holds the
# backends' stderr, where libcurl's debug output would go).  It also checks
# what other roles see: a role without a mapping gets a hint, not the key;
# pg_user_mappings hides other roles' options.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

salt=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
key=sm_dalp_secret_$salt
wrong_key=sm_dalp_wrongsecret_$salt
dalp_own_sim 35 --api-key "$key"
closed_port=$((DALP_SIM_PORT + 36))
_dalp_require_free_port "$closed_port" "a port nothing listens on" DALP_SIM_PORT
faults() { simctl faults "$1" >/dev/null; }
client_out=$DALP_TMPDIR/client.out
log_start=$(wc -c <"$DALP_PGLOG")

# The mappings are made with statement logging off: PostgreSQL itself logs
# the text of a CREATE USER MAPPING under log_statement = 'ddl' (see the
# README's "Security").
dalp_psql -q <<SQL
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
DROP SERVER IF EXISTS sec CASCADE;
DROP SERVER IF EXISTS sec_wrong CASCADE;
DROP SERVER IF EXISTS sec_small CASCADE;
DROP SERVER IF EXISTS sec_closed CASCADE;
DROP SCHEMA IF EXISTS sec CASCADE;
DROP ROLE IF EXISTS sec_user;
DROP ROLE IF EXISTS sec_other;
CREATE SERVER sec FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', max_retries '1', retry_base_ms '1', timeout_ms '1000');
CREATE SERVER sec_wrong FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$url');
CREATE SERVER sec_small FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$url', max_response_bytes '1024');
CREATE SERVER sec_closed FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'http://127.0.0.1:$closed_port', max_retries '1', retry_base_ms '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER sec OPTIONS (api_key '$key');
CREATE USER MAPPING FOR CURRENT_USER SERVER sec_wrong OPTIONS (api_key '$wrong_key');
CREATE USER MAPPING FOR CURRENT_USER SERVER sec_small OPTIONS (api_key '$key');
CREATE USER MAPPING FOR CURRENT_USER SERVER sec_closed OPTIONS (api_key '$key');
CREATE SCHEMA sec;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events, factories) FROM SERVER sec INTO sec;
CREATE FOREIGN TABLE sec.wrong_factories (name text) SERVER sec_wrong OPTIONS (resource 'factories');
CREATE FOREIGN TABLE sec.small_tokens (name text) SERVER sec_small OPTIONS (resource 'tokens');
CREATE FOREIGN TABLE sec.closed_factories (name text) SERVER sec_closed OPTIONS (resource 'factories');
CREATE ROLE sec_user LOGIN;
CREATE ROLE sec_other LOGIN;
GRANT USAGE ON FOREIGN SERVER sec TO sec_user;
CREATE USER MAPPING FOR sec_user SERVER sec OPTIONS (api_key '$key');
GRANT USAGE ON SCHEMA sec TO sec_user, sec_other;
GRANT SELECT ON ALL TABLES IN SCHEMA sec TO sec_user, sec_other;
CREATE VIEW sec.user_view AS SELECT name FROM sec.factories;
ALTER VIEW sec.user_view OWNER TO sec_user;
GRANT SELECT ON sec.user_view TO sec_other;
SQL
dalp_atexit dalp_psql -q -c "SET client_min_messages = warning;
DROP SERVER IF EXISTS sec, sec_wrong, sec_small, sec_closed CASCADE;
DROP SCHEMA IF EXISTS sec CASCADE; DROP ROLE IF EXISTS sec_user, sec_other;"

# Everything this session says and logs is as verbose as PostgreSQL gets.
sess_open
sess_run "SET client_min_messages = debug5; SET log_min_messages = debug5;
SET log_min_error_statement = debug5; SET log_error_verbosity = verbose; SET log_statement = 'all';
\\set SHOW_CONTEXT always"
sess_run "SELECT address FROM sec.tokens WHERE symbol = 'CSL';"
token=$(grep -o '0x[0-9a-f]\{40\}' <<<"$SESS_OUT" | head -n 1)
[[ -n $token ]] || dalp_die "no CSL token: $SESS_OUT"
: >"$client_out"

# Runs SQL in the session; it must fail with SQLSTATE $2.
provoke() {
  local what=$1 state=$2 sql=$3
  sess_run "$sql"
  printf -- '-- %s\n%s\n' "$what" "$SESS_OUT" >>"$client_out"
  [[ $SESS_OUT == *"ERROR:  $state:"* ]] || dalp_die "$what: expected SQLSTATE $state, got: $SESS_OUT"
}

factories="SELECT * FROM sec.factories;"
for status in 400 403 422 429 500 502 503 504; do
  faults "{\"every\": {\"$status\": 1}, \"retry_after\": 0, \"echo_key\": true}"
  sess_run "$factories"
  printf -- '-- HTTP %s\n%s\n' "$status" "$SESS_OUT" >>"$client_out"
  [[ $SESS_OUT == *"ERROR:  "*"HTTP $status"* ]] || dalp_die "HTTP $status: expected an error, got: $SESS_OUT"
  # the server's message is shown, with the key masked
  [[ $SESS_OUT == *"(X-Api-Key: ********)"* ]] ||
    dalp_die "HTTP $status: expected the server's message with the key masked, got: $SESS_OUT"
done
# the simulator did echo the key: the masking above was put to work
faults '{"every": {"503": 1}, "echo_key": true}'
"$DALP_PYTHON" - "$url" "$key" <<'PY' || dalp_die "the simulator does not echo the key"
import sys, urllib.error, urllib.request
url, key = sys.argv[1], sys.argv[2]
try:
    urllib.request.urlopen(urllib.request.Request(url + "/api/v2/system/factories", headers={"X-Api-Key": key}))
    sys.exit(1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 503 and key in e.read().decode() else 1)
PY
faults '{"echo_key": true}'
provoke "HTTP 401" 28000 "SELECT * FROM sec.wrong_factories;"
provoke "HTTP 404" P0002 "SELECT * FROM sec.events WHERE token_address = '0x0000000000000000000000000000000000000001';"
for kind in html malformed wrongshape; do
  faults "{\"every\": {\"$kind\": 1}, \"echo_key\": true}"
  provoke "$kind" HV004 "$factories"
done
faults '{"every": {"patch": 1}, "patch": {"decimals": "\"twelve\""}, "echo_key": true}'
provoke "bad value" 22P02 "SELECT * FROM sec.tokens;"
faults '{"every": {"reset": 1}, "echo_key": true}'
provoke "reset" HV00N "$factories"
faults '{"every": {"stall": 1}, "slow_ms": 5000, "echo_key": true}'
provoke "timeout" HV00N "$factories"
faults '{"every": {"redirect": 1}, "redirect_to": "http://127.0.0.1:'"$closed_port"'", "echo_key": true}'
provoke "redirect" HV000 "$factories"
faults '{"echo_key": true}'
provoke "too large" 54000 "SELECT * FROM sec.small_tokens;"
provoke "refused" HV00N "SELECT * FROM sec.closed_factories;"

# a cancel, while pg_stat_activity and the process title are read
faults '{"every": {"slow": 1}, "slow_ms": 10000}'
sess_send "SET statement_timeout = '1500ms'; SELECT * FROM sec.events WHERE token_address = '$token'; RESET statement_timeout;"
sleep 0.5
dalp_psql -AX -c "SELECT * FROM pg_stat_activity" >"$DALP_TMPDIR/activity.out"
ps -o args= -p "$SESS_BACKEND" >>"$DALP_TMPDIR/activity.out"
grep -q "token_address = '$token'" "$DALP_TMPDIR/activity.out" ||
  dalp_die "pg_stat_activity did not show the running query"
sess_wait
printf -- '-- cancel\n%s\n' "$SESS_OUT" >>"$client_out"
[[ $SESS_OUT == *"ERROR:  57014:"* ]] || dalp_die "cancel: expected 57014, got: $SESS_OUT"

# what works: EXPLAIN, EXPLAIN ANALYZE, the statistics
faults '{}'
sess_run "EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM sec.events WHERE token_address = '$token' AND event_name = 'Approval';
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM sec.events WHERE token_address = '$token' LIMIT 5;
SELECT * FROM dalp_fdw.stats();"
printf -- '-- explain, stats\n%s\n' "$SESS_OUT" >>"$client_out"
[[ $SESS_OUT == *"DALP Request: GET /api/v2/tokens/$token/events"* && $SESS_OUT == *"sec|"* ]] ||
  dalp_die "EXPLAIN or stats() failed: $SESS_OUT"
sess_close

# Other roles.  sec_user, with USAGE on the server and a mapping of its own,
# reads; sec_other, without either, gets a hint (but reads through a view
# sec_user owns, with sec_user's mapping), and neither sees another role's
# mapping options.
as_role() { PGUSER=$1 "$DALP_PGBIN/psql" -X -tA -v VERBOSITY=verbose -c "$2" 2>&1 || true; }
roles=$DALP_TMPDIR/roles.out
r=$(as_role sec_user "SELECT count(*) FROM sec.factories")
echo "$r" >>"$roles"
[[ $r =~ ^[1-9][0-9]*$ ]] || dalp_die "sec_user could not read with its own mapping: $r"
r=$(as_role sec_other "SELECT count(*) FROM sec.factories")
echo "$r" >>"$roles"
[[ $r == *"ERROR:  42704:"*"no user mapping for role \"sec_other\""* ]] ||
  dalp_die "sec_other: expected 'no user mapping', got: $r"
# through a view, the view owner's mapping is used
r=$(as_role sec_other "SELECT count(*) FROM sec.user_view")
echo "$r" >>"$roles"
[[ $r =~ ^[1-9][0-9]*$ ]] || dalp_die "sec_other could not read through sec_user's view: $r"
r=$(as_role sec_other "SELECT count(*) FROM pg_user_mappings WHERE umoptions IS NOT NULL")
echo "$r" >>"$roles"
[[ $r == 0 ]] || dalp_die "sec_other sees $r user mappings' options"
r=$(as_role sec_user "SELECT usename FROM pg_user_mappings WHERE umoptions IS NOT NULL ORDER BY 1")
echo "$r" >>"$roles"
[[ $r == sec_user ]] || dalp_die "sec_user should see the options of its own mapping only, sees: $r"
r=$(as_role sec_other "SELECT count(*) FROM pg_user_mapping")
[[ $r == *"ERROR:  42501:"* ]] || dalp_die "sec_other could read pg_user_mapping: $r"
r=$(as_role sec_user "CREATE USER MAPPING FOR sec_user SERVER sec_wrong OPTIONS (api_key 'x')")
[[ $r == *"ERROR:  42501:"*"permission denied for foreign server sec_wrong"* ]] ||
  dalp_die "sec_user made a mapping on a server it has no USAGE on: $r"

# The verdict: no key anywhere.  The server log is read from where this
# test started, and must hold this test's debug5 output.
tail -c +"$((log_start + 1))" "$DALP_PGLOG" >"$DALP_TMPDIR/server.log"
grep -q 'DEBUG: ' "$DALP_TMPDIR/server.log" || dalp_die "the server log has no DEBUG lines: log_min_messages did not apply"
grep -q 'could not complete DALP request' "$DALP_TMPDIR/server.log" || dalp_die "the server log lacks the errors provoked"
for f in "$client_out" "$DALP_TMPDIR/activity.out" "$roles" "$DALP_TMPDIR/server.log"; do
  if grep -n -e "$key" -e "$wrong_key" -e "$salt" "$f"; then
    dalp_die "an API key appears in $f (lines above)"
  fi
done
# libcurl's verbose output would show request and response headers
if grep -n -e '^> GET ' -e '^< HTTP/' -e '^\* Connected to' "$DALP_TMPDIR/server.log"; then
  dalp_die "libcurl debug output in the server log (lines above)"
fi
nerrors=$(grep -c '^ERROR: ' "$client_out")
nmasked=$(grep -c 'X-Api-Key: \*\*\*\*\*\*\*\*' "$client_out")
logkb=$(($(wc -c <"$DALP_TMPDIR/server.log") / 1024))
dalp_stop_all
printf 'ok: %d errors provoked (%d server messages quoting the key, masked); key in none of: client output, EXPLAIN, stats, pg_stat_activity, process title, %d kB of debug5 server log\n' \
  "$nerrors" "$nmasked" "$logkb"
