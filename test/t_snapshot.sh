#!/usr/bin/env bash
# Snapshots as other roles and across pg_dump, which one superuser session
# in a pg_regress suite cannot show:
#  - nothing on the bookkeeping tables is granted to PUBLIC;
#  - the functions run with the caller's rights: a role without grants is
#    refused with a clear error at each missing grant, and works with the
#    grants README.md lists; its snapshot is computed_by that role;
#  - they use the caller's user mapping: a role whose mapping holds a wrong
#    key gets the API's 401, not another role's data;
#  - pg_dump keeps the rows: a dump restored into a new database has the
#    same snapshots, balances, mirror and checkpoints, and its next snapshot
#    continues the id sequence.
# Reads the main simulator without changing it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${DALP_SIM_URL:?the main simulator must run (test/run_all.sh starts it)}"

db=dalp_t_snapshot_$$
db2=${db}_restored
ops=dalp_t_ops_$$
bad=dalp_t_badkey_$$
dump=$(mktemp)
cleanup() {
  rm -f "$dump"
  dalp_psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $db2 WITH (FORCE)" \
    -c "DROP ROLE IF EXISTS $ops" -c "DROP ROLE IF EXISTS $bad" >/dev/null 2>&1 || true
  dalp_stop_all
}
trap cleanup EXIT

dalp_psql -q -d postgres -c "CREATE DATABASE $db" -c "CREATE ROLE $ops LOGIN" -c "CREATE ROLE $bad LOGIN"
export PGDATABASE=$db
dalp_psql -q <<SQL
CREATE EXTENSION dalp_fdw;
CREATE SERVER snap FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$DALP_SIM_URL');
CREATE USER MAPPING FOR CURRENT_USER SERVER snap OPTIONS (api_key '$DALP_API_KEY');
CREATE USER MAPPING FOR $ops SERVER snap OPTIONS (api_key '$DALP_API_KEY');
CREATE USER MAPPING FOR $bad SERVER snap OPTIONS (api_key 'sm_dalp_wrong_key');
CREATE SCHEMA api;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER snap INTO api;
SQL
token=$(dalp_psql -tAc "SELECT address FROM api.tokens WHERE symbol = 'RDEP'")
[[ -n $token ]] || dalp_die "the simulator has no RDEP token"

public=$(dalp_psql -tAc "SELECT count(*) FROM information_schema.role_table_grants
                          WHERE table_schema = 'dalp_fdw' AND grantee = 'PUBLIC'")
[[ $public == 0 ]] || dalp_die "$public privileges on dalp_fdw tables are granted to PUBLIC"

snapshot="SELECT dalp_fdw.take_snapshot('snap', '$token', '2026-06-01 00:00:00+00')"
# as ROLE SQL: the SQLSTATE and message SQL fails with, or its output.
as() {
  PGUSER=$1 dalp_psql -qtA -v VERBOSITY=verbose -c "$2" 2>&1 | sed -n '1{s/^ERROR:  //;p}' || true
}
expect() {
  local got
  got=$(as "$1" "$snapshot")
  [[ $got == "$2"* ]] || dalp_die "$3: expected '$2...', got: $got"
  dalp_log "$3: $got"
}

expect "$ops" "42501: permission denied for schema dalp_fdw" "no grant at all"
dalp_psql -q -c "GRANT USAGE ON SCHEMA dalp_fdw TO $ops"
expect "$ops" "42501: cannot create schema dalp_fdw_srv_" "no CREATE on the database for the private schema"
hint=$(PGUSER=$ops dalp_psql -qtA -c "$snapshot" 2>&1 | grep '^HINT' || true)
[[ $hint == *"dalp_fdw.server_schema('snap')"* ]] || dalp_die "the error does not say how to create the schema: $hint"

# What README.md tells an administrator to run for such a role.
nsp=$(dalp_psql -tAc "SELECT dalp_fdw.server_schema('snap')")
dalp_psql -q -c "GRANT USAGE ON SCHEMA $nsp TO $ops" -c "GRANT SELECT ON ALL TABLES IN SCHEMA $nsp TO $ops"
expect "$ops" "42501: permission denied for table" "private schema granted, bookkeeping tables not"
dalp_psql -q <<SQL
GRANT SELECT, INSERT, UPDATE ON dalp_fdw.sync_state TO $ops;
GRANT SELECT, INSERT, UPDATE (retracted_at) ON dalp_fdw.event_log TO $ops;
GRANT SELECT, INSERT ON dalp_fdw.snapshots, dalp_fdw.snapshot_balances TO $ops;
GRANT USAGE ON SEQUENCE dalp_fdw.event_log_log_id_seq, dalp_fdw.snapshots_id_seq TO $ops;
SQL
sid=$(as "$ops" "$snapshot")
[[ $sid =~ ^[0-9]+$ ]] || dalp_die "with the README's grants the snapshot failed: $sid"
row=$(dalp_psql -tAc "SELECT computed_by, reconciled FROM dalp_fdw.snapshots WHERE id = $sid")
[[ $row == "$ops|t" ]] || dalp_die "snapshot $sid: computed_by and reconciled are $row"
synced=$(as "$ops" "SELECT inserted FROM dalp_fdw.sync_events('snap', '$token')")
[[ $synced == 0 ]] || dalp_die "sync_events as $ops right after the snapshot inserted $synced"

# Same grants, but a user mapping with a wrong key: the API refuses it.
dalp_psql -q <<SQL
GRANT USAGE ON SCHEMA dalp_fdw, $nsp TO $bad;
GRANT SELECT ON ALL TABLES IN SCHEMA $nsp TO $bad;
GRANT SELECT, INSERT, UPDATE ON dalp_fdw.sync_state TO $bad;
GRANT SELECT, INSERT, UPDATE (retracted_at) ON dalp_fdw.event_log TO $bad;
GRANT SELECT, INSERT ON dalp_fdw.snapshots, dalp_fdw.snapshot_balances TO $bad;
GRANT USAGE ON SEQUENCE dalp_fdw.event_log_log_id_seq, dalp_fdw.snapshots_id_seq TO $bad;
SQL
expect "$bad" "28000:" "a user mapping with a wrong key"

# pg_dump keeps the bookkeeping rows.
dalp_psql -q -c "SELECT dalp_fdw.take_snapshot('snap', '$token', now())" >/dev/null
fingerprint() {
  dalp_psql -d "$1" -tA <<'SQL'
SELECT (SELECT md5(string_agg(s::text, ',' ORDER BY s.id)) FROM dalp_fdw.snapshots s) || ' '
    || (SELECT md5(string_agg(b::text, ',' ORDER BY b.snapshot_id, b.account)) FROM dalp_fdw.snapshot_balances b) || ' '
    || (SELECT md5(string_agg(l::text, ',' ORDER BY l.log_id)) FROM dalp_fdw.event_log l) || ' '
    || (SELECT md5(string_agg(st::text, ',' ORDER BY st.server, st.token_address)) FROM dalp_fdw.sync_state st) || ' '
    || (SELECT count(*) FROM dalp_fdw.snapshots) || ' snapshots, '
    || (SELECT count(*) FROM dalp_fdw.event_log) || ' events';
SQL
}
before=$(fingerprint "$db")
pg_dump -d "$db" -f "$dump"
dalp_psql -q -d postgres -c "CREATE DATABASE $db2"
dalp_psql -q -d "$db2" -f "$dump" >/dev/null
after=$(fingerprint "$db2")
[[ $before == "$after" ]] || dalp_die "the restored bookkeeping differs: before $before, after $after"
next=$(dalp_psql -d "$db2" -tAc "SELECT dalp_fdw.take_snapshot('snap', '$token', now()) > (SELECT max(id) FROM dalp_fdw.snapshots)")
[[ $next == t ]] || dalp_die "the restored snapshots_id_seq restarted below the restored snapshots"

echo "ok: no PUBLIC grants; each missing grant refused with 42501, the README's grants suffice; caller's mapping used (28000 with a wrong key); pg_dump and restore keep the ${after#* * * * }"
