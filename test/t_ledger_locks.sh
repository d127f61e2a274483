#!/usr/bin/env bash
# Locks a role can keep that other servers' syncs would wait for. A sync
# that mirrors 10,000 events or more ANALYZEs event_log, and a role that
# may use one server keeps that lock (SHARE UPDATE EXCLUSIVE) as long as
# its transaction stays open: the first sync of a big token on another
# server must not wait for it. Its own simulator, with a 10,500-event token.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 47 --big-token-events 10500

holder=dalp_t_lock_holder_$$
dalp_own_database "dalp_t_locks_$$"
dalp_sim_server other "$url"
dalp_psql -q -c "CREATE SCHEMA api" -c "IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER other INTO api"
token=$(dalp_token api.tokens BIG)

# What the big sync of a role on some server keeps until it commits.
PGAPPNAME=$holder dalp_psql -q -c "BEGIN" -c "LOCK TABLE dalp_fdw_ledger.event_log IN SHARE UPDATE EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
for ((i = 0; i < 100; i++)); do
  [[ $(dalp_psql -tAc "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                        WHERE a.application_name = '$holder' AND l.granted AND l.mode = 'ShareUpdateExclusiveLock'") == 1 ]] && break
  sleep 0.1
done
start=$SECONDS
# (ANALYZE is skipped, with a WARNING saying so)
got=$(PGOPTIONS='-c statement_timeout=60s -c client_min_messages=error' \
  dalp_psql -tA -c "SELECT inserted FROM dalp_fdw.sync_events('other', '$token')" 2>&1) || true
dalp_psql -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$holder'" >/dev/null
[[ $got == 10500 ]] || dalp_die "the first sync of a 10,500-event token while event_log's ANALYZE lock is held: $got"
echo "ok: a 10,500-event first sync finished in $((SECONDS - start)) s while another transaction kept event_log's ANALYZE lock"
