#!/usr/bin/env bash
# pg_cron runs the scheduled use README.md shows: sync_events for a token and
# REFRESH MATERIALIZED VIEW CONCURRENTLY of a cap table over the foreign
# tables, as two jobs in a database of this test, and sync_events of another
# token as a role that has nothing but USAGE on the server and a user
# mapping (README's grants). It waits for a successful run of each, checks
# the mirror and the view, appends events to the
# simulator, waits for the next runs and checks again. pg_cron lives in the
# database cron.database_name names (the cluster's "postgres"); jobs reach
# other databases through cron.schedule_in_database. Its own simulator.
# pg_cron before 1.5 schedules by the minute: then this takes 1 to 3 minutes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 42

crondb=$(dalp_psql -tA -d postgres -c "SHOW cron.database_name" 2>/dev/null) ||
  dalp_die "pg_cron is not loaded: the cluster needs shared_preload_libraries = 'pg_cron' (test/lib.sh sets it)"
db=dalp_cron_$$
ops=dalp_cron_ops_$$
jobs="'dalp_t_cron_sync_$$', 'dalp_t_cron_refresh_$$', 'dalp_t_cron_ops_$$'"
created_cron=
cleanup() {
  dalp_psql -q -d "$crondb" -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ($jobs)" >/dev/null 2>&1 || true
  if [[ -n $created_cron ]]; then dalp_psql -q -d "$crondb" -c "DROP EXTENSION pg_cron" >/dev/null 2>&1 || true; fi
  dalp_stop_all
}
trap cleanup EXIT

if [[ -z $(dalp_psql -tA -d "$crondb" -c "SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'") ]]; then
  dalp_psql -q -d "$crondb" -c "CREATE EXTENSION pg_cron"
  created_cron=1
fi
dalp_own_database "$db"
dalp_own_role "$ops"
dalp_sim_server cronsim "$url"
dalp_psql -q <<SQL
GRANT USAGE ON FOREIGN SERVER cronsim TO $ops;
CREATE USER MAPPING FOR $ops SERVER cronsim OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA dalp;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, holders, events) FROM SERVER cronsim INTO dalp;
SQL
token=$(dalp_token dalp.tokens RDEP)
token2=$(dalp_token dalp.tokens NWEA)
dalp_psql -q -d "$db" <<SQL
CREATE MATERIALIZED VIEW cap_table AS
  SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = '$token';
CREATE UNIQUE INDEX ON cap_table (account);
SQL

# schedule NAME COMMAND [ROLE]: a job running COMMAND in $db as ROLE
# (default: the one scheduling it). pg_cron 1.5 and later take '1 seconds';
# 1.4 only cron syntax, by the minute.
schedule() {
  local name=$1 command=$2 role=${3:-$PGUSER} every
  for every in '1 seconds' '* * * * *'; do
    if dalp_psql -qtA -d "$crondb" -v ON_ERROR_STOP=1 \
      -c "SELECT cron.schedule_in_database('$name', '$every', \$cmd\$$command\$cmd\$, '$db', '$role')" >/dev/null 2>&1; then
      dalp_log "job $name every '$every'"
      return 0
    fi
  done
  dalp_die "cron.schedule_in_database refused the job $name"
}

# wait_run JOB SINCE: until JOB has a successful run that started after SINCE.
wait_run() {
  local job=$1 since=$2 t status
  for ((t = 0; t < 200; t++)); do
    status=$(dalp_psql -tA -d "$crondb" -c "
      SELECT d.status || ': ' || coalesce(d.return_message, '')
        FROM cron.job_run_details d JOIN cron.job j USING (jobid)
       WHERE j.jobname = '$job' AND d.start_time > '$since' AND d.status IN ('succeeded', 'failed')
       ORDER BY d.status DESC LIMIT 1")
    case $status in
      succeeded*) return 0 ;;
      failed*) dalp_die "job $job failed: $status" ;;
    esac
    sleep 1
  done
  dalp_die "job $job had no run after $since within 200 s"
}

# The mirror holds exactly the API's events, and the view the API's holders.
check() {
  local r
  r=$(dalp_psql -tA -d "$db" <<SQL
SELECT (SELECT count(*) FROM ((SELECT id FROM dalp_fdw.event_log WHERE token_address = '$token' AND retracted_at IS NULL
                               EXCEPT SELECT id FROM dalp.events WHERE token_address = '$token')
                              UNION ALL
                              (SELECT id FROM dalp.events WHERE token_address = '$token'
                               EXCEPT SELECT id FROM dalp_fdw.event_log WHERE token_address = '$token' AND retracted_at IS NULL)) d)
    || ' events differ, '
    || (SELECT count(*) FROM ((SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = '$token'
                               EXCEPT TABLE cap_table)
                              UNION ALL
                              (TABLE cap_table
                               EXCEPT SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = '$token')) d)
    || ' holders differ';
SQL
)
  [[ $r == "0 events differ, 0 holders differ" ]] || dalp_die "$1: $r"
}

since=$(dalp_psql -tA -d "$crondb" -c "SELECT now()")
schedule "dalp_t_cron_sync_$$" "SELECT * FROM dalp_fdw.sync_events('cronsim', '$token')"
schedule "dalp_t_cron_refresh_$$" "REFRESH MATERIALIZED VIEW CONCURRENTLY cap_table"
schedule "dalp_t_cron_ops_$$" "SELECT * FROM dalp_fdw.sync_events('cronsim', '$token2')" "$ops"
wait_run "dalp_t_cron_sync_$$" "$since"
wait_run "dalp_t_cron_refresh_$$" "$since"
wait_run "dalp_t_cron_ops_$$" "$since"
check "after the first runs"
ops_rows=$(dalp_psql -tA -d "$db" -c "
  SELECT (SELECT count(*) FROM dalp_fdw.event_log WHERE token_address = '$token2')
         = (SELECT count(*) FROM dalp.events WHERE token_address = '$token2')")
[[ $ops_rows == t ]] || dalp_die "the job of $ops did not mirror every event of $token2"
events=$(dalp_psql -tA -d "$db" -c "SELECT count(*) FROM dalp_fdw.event_log WHERE token_address = '$token'")
((events > 0)) || dalp_die "the sync job mirrored no event"

before=$(dalp_psql -tA -d "$db" -c "SELECT md5(string_agg(account || balance_exact, ',' ORDER BY account)) FROM cap_table")
"$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$url" append "$token" 40 >/dev/null
since=$(dalp_psql -tA -d "$crondb" -c "SELECT now()")
wait_run "dalp_t_cron_sync_$$" "$since"
wait_run "dalp_t_cron_refresh_$$" "$since"
check "after events were appended"
after=$(dalp_psql -tA -d "$db" -c "SELECT md5(string_agg(account || balance_exact, ',' ORDER BY account)) FROM cap_table")
[[ $before != "$after" ]] || dalp_die "the cap table did not change after 40 appended events"
added=$(($(dalp_psql -tA -d "$db" -c "SELECT count(*) FROM dalp_fdw.event_log WHERE token_address = '$token'") - events))
((added == 40)) || dalp_die "the sync job mirrored $added of 40 appended events"

echo "ok: pg_cron ran sync_events ($events events, then the 40 appended), the same as a role with only USAGE and a mapping, and a concurrent refresh of a cap table, in database $db"
