#!/usr/bin/env bash
# Snapshots as login roles, CREATE EXTENSION into a schema made beforehand,
# and pg_dump, which one superuser session in a pg_regress suite cannot show
# (sql/ledger_security.sql has the attacks as SET ROLE):
#  - CREATE EXTENSION refuses a schema dalp_fdw that another role owns, that
#    others may create objects in, or that holds another role's objects (an
#    overload of sync_events, say); it installs into an empty one of the
#    installing role's own;
#  - PUBLIC gets USAGE on schema dalp_fdw, SELECT on its views and EXECUTE
#    on its entry points, nothing on schema dalp_fdw_ledger;
#  - the README's grants suffice: a role with USAGE on the server and a
#    user mapping takes a snapshot, computed_by that role; without USAGE it
#    is refused (42501) before anything is read; with a wrong key in its
#    mapping it gets the API's 401 (28000), not another role's data;
#  - it sees its servers' rows and no other's; an auditor sees one server's;
#  - pg_dump keeps the rows, the servers they are kept for and the
#    auditors: a dump restores without an error into a new database, with
#    the same snapshots, balances, mirror, checkpoints, servers and
#    auditors, and its next snapshot continues the id sequence; in the same
#    cluster the server's rows and the auditors' grants hold again; where
#    the roles have other OIDs (another cluster) they hold for no one, and
#    the server's syncs are refused (42501), until the README's statements
#    give the rows to the server and grant again.
# Reads the main simulator without changing it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${DALP_SIM_URL:?the main simulator must run (test/run_all.sh starts it)}"

db=dalp_t_snapshot_$$
db2=${db}_restored
dbx=${db}_schema
ops=dalp_t_ops_$$
bad=dalp_t_badkey_$$
aud=dalp_t_auditor_$$
mal=dalp_t_mallory_$$
# The databases first, so that they are dropped before the roles.
dalp_own_database "$db"
dalp_new_database "$db2"
dalp_new_database "$dbx"
for role in "$ops" "$bad" "$aud" "$mal"; do dalp_own_role "$role"; done
dump=$DALP_TMPDIR/dump.sql

# as ROLE DB SQL: the SQLSTATE and message SQL fails with, or its output.
as() {
  PGUSER=$1 dalp_psql -d "$2" -qtA -v VERBOSITY=verbose -c "$3" 2>&1 | sed -n '1{s/^ERROR:  //;p}' || true
}
expect() { # ROLE DB SQL EXPECTED-PREFIX WHAT
  local got
  got=$(as "$1" "$2" "$3")
  [[ $got == "$4"* ]] || dalp_die "$5: expected '$4...', got: $got"
  dalp_log "$5: $got"
}

# CREATE EXTENSION and a schema dalp_fdw made beforehand.
install() { as postgres "$dbx" "CREATE EXTENSION dalp_fdw"; }
dalp_psql -q -d "$dbx" -c "CREATE SCHEMA dalp_fdw AUTHORIZATION $mal"
expect postgres "$dbx" "CREATE EXTENSION dalp_fdw" "42501: schema dalp_fdw already exists and is owned by role $mal" \
  "a schema of another role"
dalp_psql -q -d "$dbx" -c "ALTER SCHEMA dalp_fdw OWNER TO postgres" -c "GRANT CREATE ON SCHEMA dalp_fdw TO $mal"
expect postgres "$dbx" "CREATE EXTENSION dalp_fdw" "42501: schema dalp_fdw already exists and lets $mal create objects in it" \
  "a schema another role may create objects in"
PGUSER=$mal dalp_psql -q -d "$dbx" -c "CREATE FUNCTION dalp_fdw.sync_events(server name, token_address text, reread_window text)
  RETURNS TABLE (inserted bigint, retracted bigint, checkpoint_time timestamptz) LANGUAGE sql AS 'SELECT 0::bigint, 0::bigint, now()'"
dalp_psql -q -d "$dbx" -c "REVOKE CREATE ON SCHEMA dalp_fdw FROM $mal"
expect postgres "$dbx" "CREATE EXTENSION dalp_fdw" "42501: schema dalp_fdw already exists and holds objects of $mal" \
  "a schema holding another role's overload"
dalp_psql -q -d "$dbx" -c "SET client_min_messages = warning" -c "DROP SCHEMA dalp_fdw CASCADE" -c "CREATE SCHEMA dalp_fdw"
[[ $(install) == "" ]] || dalp_die "CREATE EXTENSION into an empty schema of the installing role failed: $(install)"

dalp_sim_server snap "$DALP_SIM_URL"
dalp_sim_server other "$DALP_SIM_URL"
dalp_psql -q <<SQL
CREATE USER MAPPING FOR $ops SERVER snap OPTIONS (api_key '$DALP_API_KEY');
CREATE USER MAPPING FOR $bad SERVER snap OPTIONS (api_key 'sm_dalp_wrong_key');
CREATE SCHEMA api;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER snap INTO api;
SQL
token=$(dalp_token api.tokens RDEP)

# What PUBLIC may do.
public=$(dalp_psql -tA <<'SQL'
SELECT (SELECT string_agg(table_name || ':' || privilege_type, ',' ORDER BY table_name, privilege_type)
          FROM information_schema.role_table_grants
         WHERE table_schema IN ('dalp_fdw', 'dalp_fdw_ledger') AND grantee = 'PUBLIC')
    || ' ' || has_schema_privilege('public', 'dalp_fdw', 'USAGE')
    || ' ' || has_schema_privilege('public', 'dalp_fdw_ledger', 'USAGE')
    || ' ' || (SELECT count(*) FROM pg_proc p
                WHERE p.pronamespace = 'dalp_fdw'::regnamespace AND p.proname LIKE '%_impl'
                  AND has_function_privilege('public', p.oid, 'EXECUTE')) || ' implementations';
SQL
)
[[ $public == "activity:SELECT,auditors:SELECT,event_log:SELECT,snapshot_balances:SELECT,snapshots:SELECT,sync_state:SELECT true false 0 implementations" ]] ||
  dalp_die "PUBLIC's privileges (views, schema dalp_fdw, schema dalp_fdw_ledger, implementations): $public"

snapshot="SELECT dalp_fdw.take_snapshot('snap', '$token', '2026-06-01 00:00:00+00')"
expect "$ops" "$db" "$snapshot" "42501: permission denied for foreign server snap" "no USAGE on the server"
# What README.md tells an administrator to run for such a role.
dalp_psql -q -c "GRANT USAGE ON FOREIGN SERVER snap TO $ops, $bad"
sid=$(as "$ops" "$db" "$snapshot")
[[ $sid =~ ^[0-9]+$ ]] || dalp_die "with the README's grants the snapshot failed: $sid"
row=$(dalp_psql -tAc "SELECT computed_by, reconciled FROM dalp_fdw.snapshots WHERE id = $sid")
[[ $row == "$ops|t" ]] || dalp_die "snapshot $sid: computed_by and reconciled are $row"
synced=$(as "$ops" "$db" "SELECT inserted FROM dalp_fdw.sync_events('snap', '$token')")
[[ $synced == 0 ]] || dalp_die "sync_events as $ops right after the snapshot inserted $synced"
expect "$bad" "$db" "$snapshot" "28000:" "a user mapping with a wrong key"

# Rows per server: the superuser's snapshot on "other" is hidden from ops,
# and an auditor of snap sees snap's rows only.
dalp_psql -q -c "SELECT dalp_fdw.take_snapshot('other', '$token', now())" >/dev/null
seen="SELECT string_agg(DISTINCT server, ',' ORDER BY server) FROM dalp_fdw.snapshots"
[[ $(as "$ops" "$db" "$seen") == snap ]] || dalp_die "$ops sees the snapshots of: $(as "$ops" "$db" "$seen")"
[[ $(as "$aud" "$db" "$seen") == "" ]] || dalp_die "$aud sees snapshots before any grant: $(as "$aud" "$db" "$seen")"
dalp_psql -q -c "SELECT dalp_fdw.grant_audit('snap', '$aud')" >/dev/null
[[ $(as "$aud" "$db" "$seen") == snap ]] || dalp_die "the auditor of snap sees the snapshots of: $(as "$aud" "$db" "$seen")"
expect "$aud" "$db" "$snapshot" "42501: permission denied for foreign server snap" "an auditor taking a snapshot"

# Any role may take any advisory lock: one that may use no server holds
# the one a first use of a server once waited for, and the first use goes on.
dalp_psql -q -c "CREATE SERVER fresh FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$DALP_SIM_URL')" \
  -c "GRANT USAGE ON FOREIGN SERVER fresh TO $ops"
fresh=$(dalp_psql -tAc "SELECT oid FROM pg_foreign_server WHERE srvname = 'fresh'")
PGUSER=$mal PGAPPNAME=dalp_t_lock_holder dalp_psql -q -c "SELECT pg_advisory_lock(hashtext('dalp_fdw.import_server_tables'), $fresh::int)" \
  -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
for ((i = 0; i < 100; i++)); do
  [[ $(dalp_psql -tAc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $fresh") == 1 ]] && break
  sleep 0.1
done
PGOPTIONS='-c statement_timeout=10s' expect "$ops" "$db" "SELECT dalp_fdw.import_server_tables('fresh')" "dalp_fdw_srv_$fresh" \
  "first use of a server while $mal holds an advisory lock on it"
dalp_psql -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dalp_t_lock_holder'" >/dev/null

# pg_dump keeps the bookkeeping rows and the auditors.
dalp_psql -q -c "SELECT dalp_fdw.take_snapshot('snap', '$token', now())" >/dev/null
fingerprint() {
  dalp_psql -d "$1" -tA <<'SQL'
SELECT (SELECT md5(string_agg(s::text, ',' ORDER BY s.id)) FROM dalp_fdw_ledger.snapshots s) || ' '
    || (SELECT md5(string_agg(b::text, ',' ORDER BY b.snapshot_id, b.account)) FROM dalp_fdw_ledger.snapshot_balances b) || ' '
    || (SELECT md5(string_agg(l::text, ',' ORDER BY l.log_id)) FROM dalp_fdw_ledger.event_log l) || ' '
    || (SELECT md5(string_agg(st::text, ',' ORDER BY st.server, st.token_address)) FROM dalp_fdw_ledger.sync_state st) || ' '
    || (SELECT string_agg(a.server || ':' || a.auditor, ',') FROM dalp_fdw_ledger.auditors a) || ' '
    || (SELECT string_agg(p.server || ':' || pg_get_userbyid(p.server_owner), ',' ORDER BY p.server) FROM dalp_fdw_ledger.servers p) || ' '
    || (SELECT count(*) FROM dalp_fdw_ledger.snapshots) || ' snapshots, '
    || (SELECT count(*) FROM dalp_fdw_ledger.event_log) || ' events';
SQL
}
before=$(fingerprint "$db")
pg_dump -d "$db" -f "$dump"
dalp_psql -q -d "$db2" -f "$dump" >/dev/null || dalp_die "the dump did not restore without errors"
after=$(fingerprint "$db2")
[[ $before == "$after" ]] || dalp_die "the restored bookkeeping differs: before $before, after $after"
next=$(dalp_psql -d "$db2" -tAc "SELECT dalp_fdw.take_snapshot('snap', '$token', now()) > (SELECT max(id) FROM dalp_fdw.snapshots)")
[[ $next == t ]] || dalp_die "the restored snapshots_id_seq restarted below the restored snapshots"
[[ $(as "$aud" "$db2" "$seen") == snap ]] || dalp_die "after the restore the auditor of snap sees: $(as "$aud" "$db2" "$seen")"
# Another cluster, as far as the records can tell: there the roles have
# other OIDs.
dalp_psql -q -d "$db2" -c "UPDATE dalp_fdw_ledger.auditors SET auditor_oid = 0, server_oid = 0, server_owner = 0" \
  -c "UPDATE dalp_fdw_ledger.servers SET server_oid = 0, server_owner = 0"
[[ $(as "$aud" "$db2" "$seen") == "" ]] || dalp_die "restored into another cluster, the auditor of snap sees: $(as "$aud" "$db2" "$seen")"
[[ $(as "$ops" "$db2" "$seen") == "" ]] || dalp_die "restored into another cluster, $ops sees the snapshots of: $(as "$ops" "$db2" "$seen")"
expect "$ops" "$db2" "SELECT inserted FROM dalp_fdw.sync_events('snap', '$token')" \
  '42501: server "snap" is not the server whose snapshots and mirror are kept under its name' \
  "a sync restored into another cluster"
dalp_psql -q -d "$db2" -c "UPDATE dalp_fdw_ledger.servers p SET server_oid = s.oid, server_owner = s.srvowner FROM pg_foreign_server s WHERE s.srvname = p.server" \
  -c "SELECT dalp_fdw.grant_audit(a.server, a.auditor::regrole) FROM dalp_fdw.auditors a" >/dev/null
[[ $(as "$aud" "$db2" "$seen") == snap ]] || dalp_die "granted again after a restore into another cluster, the auditor of snap sees: $(as "$aud" "$db2" "$seen")"
[[ $(as "$ops" "$db2" "SELECT inserted FROM dalp_fdw.sync_events('snap', '$token')") == 0 ]] \
  || dalp_die "a sync after the rows were given to the restored server: $(as "$ops" "$db2" "SELECT inserted FROM dalp_fdw.sync_events('snap', '$token')")"

echo "ok: CREATE EXTENSION refuses 3 kinds of foreign dalp_fdw schema; PUBLIC reads the views only; USAGE + mapping suffice, else 42501; caller's mapping used (28000 with a wrong key); rows per server and per auditor; pg_dump and restore keep the ${after#* * * * * * }, the servers' rows and the auditors' grants in the same cluster, in another once given and granted again"
