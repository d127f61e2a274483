#!/usr/bin/env bash
# dalp_fdw.activity and the cluster-wide dalp_fdw.stats(true), read from
# other sessions (dalp_fdw is preloaded in the test cluster):
#  - during a 100-page scan: the scanning backend's row shows the scan, its
#    request path (decoded, no key), pages done rising, 100 pages expected,
#    rows and the wait; a role without privileges sees who, not what; a
#    member of pg_read_all_stats sees it all; after the scan the row is gone,
#    and the cluster-wide counters hold the scan's pages and rows;
#  - during take_snapshot of a large token: its phases, and the backfill's
#    pages rising towards the pages expected;
#  - pg_terminate_backend of a backend waiting for the budget and of one
#    mid-request, and a kill -9 mid-request (the postmaster restarts the
#    cluster): no row, budget or lock is left behind.
# Starts its own simulator, with a token BIG of 2000 events, and for the
# kill -9 a cluster of its own (the crash stays out of the shared log).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

other=dalp_t_act_other_$$
stats_role=dalp_t_act_stats_$$
main_port=$PGPORT
cleanup() {
  PGPORT=$main_port dalp_psql -q -c "DROP ROLE IF EXISTS $other" -c "DROP ROLE IF EXISTS $stats_role" >/dev/null 2>&1 || true
  dalp_stop_all
}
trap cleanup EXIT

dalp_own_sim 75 --big-token-events 2000
big=$(simctl tokens | awk '$2 == "BIG" { print $1 }')
[[ -n $big ]] || dalp_die "the simulator has no BIG token"

[[ $(dalp_psql -tAc "SELECT current_setting('shared_preload_libraries') ~ 'dalp_fdw'") == t ]] ||
  dalp_die "the test cluster does not preload dalp_fdw"

# shared memory: the size README gives (fixed part, and per MaxBackends)
read -r shmem readme_size <<<"$(dalp_psql -tA -F ' ' -c "SELECT a.size, 25328 + 400 * (
    current_setting('max_connections')::int + current_setting('autovacuum_max_workers')::int + 1 +
    current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int)
  FROM pg_shmem_allocations a WHERE a.name = 'dalp_fdw'")"
((shmem == readme_size)) || dalp_die "shared memory is $shmem bytes, README says $readme_size"
tr '\n' ' ' <"$DALP_REPO/README.md" | grep -q '25,328 bytes (64 .* plus 400 bytes per possible backend' ||
  dalp_die "README.md no longer gives the size of shared memory this test checks"

dalp_psql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
DROP SERVER IF EXISTS act CASCADE;
DROP SERVER IF EXISTS act_kill CASCADE;
DROP SCHEMA IF EXISTS act CASCADE;
DELETE FROM dalp_fdw.event_log WHERE server = 'act';
DELETE FROM dalp_fdw.sync_state WHERE server = 'act';
CREATE SERVER act FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', page_size '20', concurrency '1');
-- 30 requests a minute: one every 2 s, no burst
CREATE SERVER act_kill FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', rate_limit_per_minute '30', max_retries '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER act OPTIONS (api_key '$DALP_API_KEY');
CREATE USER MAPPING FOR CURRENT_USER SERVER act_kill OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA act;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (events) FROM SERVER act INTO act;
CREATE FOREIGN TABLE act.kill_f (name text) SERVER act_kill OPTIONS (resource 'factories');
CREATE ROLE $other LOGIN;
CREATE ROLE $stats_role LOGIN IN ROLE pg_read_all_stats;
GRANT USAGE ON SCHEMA dalp_fdw TO $other, $stats_role;
SQL

# The backend's row, as "command|phase|path|pages_done|pages_expected|rows|wait"
# (empty: no row), read as role $2 (default: the superuser).
row_of() {
  PGUSER=${2:-$PGUSER} dalp_psql -tA -c "SELECT concat_ws('|', command, coalesce(phase, ''), path,
      pages_done, coalesce(pages_expected::text, ''), rows, coalesce(wait, ''))
    FROM dalp_fdw.activity WHERE pid = $1"
}

# Waits (up to 5 s) until the session's backend waits on KIND ($1), then
# sets dead to its pid.
await_wait() {
  local i
  for ((i = 0; i < 250; i++)); do
    [[ $(row_of "$SESS_BACKEND") == *\|$1 ]] && break
    sleep 0.02
  done
  [[ $(row_of "$SESS_BACKEND") == *\|$1 ]] ||
    dalp_die "the session's backend did not wait on $1: $(row_of "$SESS_BACKEND")"
  dead=$SESS_BACKEND
}

# pg_terminate_backend of the session's backend: it must leave no row.
terminate_session() {
  [[ $(dalp_psql -tAc "SELECT pg_terminate_backend($dead, 5000)") == t ]] || dalp_die "pg_terminate_backend failed"
  sess_close
  [[ -z $(row_of "$dead") ]] || dalp_die "the terminated backend's row stayed: $(row_of "$dead")"
}

# sess_send SQL, then poll the row of the session's backend until the
# statement ends; the rows seen, one a line, in $DALP_TMPDIR/seen.
send_and_watch() {
  local sent row i
  : >"$DALP_TMPDIR/seen"
  sent=$(dalp_psql -tAc "SELECT clock_timestamp()")
  sess_send "$1"
  for ((i = 0; i < 1200; i++)); do
    row=$(row_of "$SESS_BACKEND")
    [[ -n $row ]] && echo "$row" >>"$DALP_TMPDIR/seen"
    # idle again since the statement was sent: it ended
    [[ $(dalp_psql -tAc "SELECT state = 'idle' AND state_change > '$sent' FROM pg_stat_activity
                          WHERE pid = $SESS_BACKEND") == t ]] && break
    sleep 0.1
  done
  sess_wait
}

## a 100-page scan (2000 events, 20 a page), each page 30 ms late
simctl faults '{"latency_ms": 30}' >/dev/null
sess_open
sess_run "SELECT dalp_fdw.stats_reset(true);"
scan="SELECT count(*) FROM (SELECT * FROM act.events WHERE token_address = '$big' OFFSET 0) s;"
# another role, while the scan is under way: who, not what
sess_send "$scan"
for ((i = 0; i < 100; i++)); do
  [[ -n $(row_of "$SESS_BACKEND") ]] && break
  sleep 0.05
done
hidden=$(PGUSER=$other dalp_psql -tA -c "SELECT concat_ws('|', pid, usename, coalesce(server::text, '-'), path,
    coalesce(pages_done::text, '-'), coalesce(wait, '-')) FROM dalp_fdw.activity WHERE pid = $SESS_BACKEND")
[[ $hidden == "$SESS_BACKEND|postgres|-|<insufficient privilege>|-|-" ]] ||
  dalp_die "a role without privileges saw the row as '$hidden'"
shown=$(row_of "$SESS_BACKEND" "$stats_role")
[[ $shown == scan\|* ]] || dalp_die "a member of pg_read_all_stats saw the row as '$shown'"
sess_wait
[[ $SESS_OUT == 2000 ]] || dalp_die "the scan returned $SESS_OUT rows, not 2000"
# and once more, watched from start to end
send_and_watch "$scan"
[[ $SESS_OUT == 2000 ]] || dalp_die "the scan returned $SESS_OUT rows, not 2000"
[[ -z $(row_of "$SESS_BACKEND") ]] || dalp_die "the row stayed after the scan: $(row_of "$SESS_BACKEND")"
"$DALP_PYTHON" - "$DALP_TMPDIR/seen" "$big" "$DALP_API_KEY" <<'PY' >"$DALP_TMPDIR/scan_summary" || { cat "$DALP_TMPDIR/seen"; dalp_die "the scan's rows are wrong (rows seen above)"; }
import sys
seen, big, key = [l.rstrip("\n").split("|") for l in open(sys.argv[1])], sys.argv[2], sys.argv[3]
assert len(seen) >= 5, "only %d rows seen" % len(seen)
done = [int(r[3]) for r in seen]
assert all(r[0] == "scan" and r[1] == "" for r in seen), "not a scan: %s" % seen[0]
assert done == sorted(done) and len(set(done)) >= 5, "pages done not rising: %s" % done
assert all(r[4] == "100" for r in seen if r[3] != "0"), "pages expected: %s" % sorted({r[4] for r in seen})
assert all(r[2].startswith("/api/v2/tokens/%s/events?" % big) for r in seen if r[2]), seen[-1][2]
assert all(key not in "|".join(r) for r in seen), "the key is in the view"
assert all(int(r[5]) >= 20 * (int(r[3]) - 1) for r in seen), "rows behind pages"
waits = sorted({r[6] for r in seen})
print("%d reads: pages done %s, expected 100, waits %s; e.g. %s" % (
    len(seen), " ".join(map(str, sorted(set(done)))), ",".join(waits), "|".join(seen[len(seen) // 2])))
PY
dalp_log "100-page scan: $(cat "$DALP_TMPDIR/scan_summary")"
read -r c_pages c_rows c_budget <<<"$(dalp_psql -tA -F ' ' -c "SELECT pages, rows, budget FROM dalp_fdw.stats(true) WHERE server = 'act'")"
((c_pages >= 100 && c_rows >= 2000)) || dalp_die "cluster-wide stats of act: $c_pages pages, $c_rows rows (100, 2000 expected)"
[[ $c_budget == cluster ]] || dalp_die "stats(true) says budget '$c_budget'"
[[ -z $(dalp_psql -tAc "SELECT 1 FROM dalp_fdw.stats() WHERE server = 'act'") ]] ||
  dalp_die "a new session's own stats() count the other session's scan"

## take_snapshot of BIG: the phases; the backfill reads 100 pages
send_and_watch "SELECT dalp_fdw.take_snapshot('act', '$big', now()) > 0;"
[[ $SESS_OUT == t ]] || dalp_die "take_snapshot failed: $SESS_OUT"
"$DALP_PYTHON" - "$DALP_TMPDIR/seen" <<'PY' >"$DALP_TMPDIR/snap_summary" || { cat "$DALP_TMPDIR/seen"; dalp_die "take_snapshot's rows are wrong (rows seen above)"; }
import sys
seen = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
assert seen and all(r[0] == "take_snapshot" for r in seen), "not take_snapshot: %s" % seen[:1]
phases = []
for r in seen:
    if not phases or phases[-1] != r[1]:
        phases.append(r[1])
order = ["health check", "backfill", "replay", "reconcile"]
assert all(p in order for p in phases) and phases == sorted(phases, key=order.index), "phases %s" % phases
backfill = [r for r in seen if r[1] == "backfill" and r[3] != "0"]
done = [int(r[3]) for r in backfill]
assert len(set(done)) >= 5 and done == sorted(done), "backfill pages done: %s" % done
assert {r[4] for r in backfill} == {"100"}, "backfill pages expected: %s" % {r[4] for r in backfill}
print("%d reads, phases %s; backfill pages done %s of 100" % (len(seen), " > ".join(phases), " ".join(map(str, sorted(set(done))))))
PY
dalp_log "take_snapshot: $(cat "$DALP_TMPDIR/snap_summary")"
[[ -z $(row_of "$SESS_BACKEND") ]] || dalp_die "the row stayed after take_snapshot"
simctl faults '{}' >/dev/null

## pg_terminate_backend: while waiting for the budget, and mid-request
# the session's first request takes the budget until +2 s; its second
# reserves +2 s and waits for it: terminated, it gives that time back, so a
# new session's request leaves at +2 s, not +4 s
simctl clear >/dev/null
sess_run "SELECT count(*) > 0 FROM act.kill_f;"
sess_send "SELECT count(*) > 0 FROM act.kill_f;"
await_wait rate_limit
terminate_session
[[ $(dalp_psql -tAc "SELECT count(*) > 0 FROM act.kill_f") == t ]] || dalp_die "the next request failed"
gap=$(simctl log | "$DALP_PYTHON" -c 'import json, sys
log = json.load(sys.stdin)
assert len(log) == 2, "%d requests, 2 expected" % len(log)
print(round(log[1]["start_ms"] - log[0]["start_ms"]))')
((gap >= 1900 && gap < 3000)) || dalp_die "after the terminated wait, the next request left $gap ms after the first (2000 expected)"
dalp_log "pg_terminate_backend while waiting for the budget: no row left; the next request left ${gap} ms after the first, as if the wait never was"

# mid-request: the answer takes 10 s
simctl faults '{"every": {"slow": 1}, "slow_ms": 10000}' >/dev/null
sess_open
sess_send "SELECT count(*) FROM act.events WHERE token_address = '$big' AND event_name = 'TransferCompleted';"
await_wait network
terminate_session
simctl faults '{}' >/dev/null
[[ $(dalp_psql -tAc "SELECT count(*) = 2000 FROM act.events WHERE token_address = '$big'") == t ]] ||
  dalp_die "reading after pg_terminate_backend failed"
dalp_log "pg_terminate_backend mid-request: no row left, the next scan reads"

## kill -9 mid-request, in a cluster of this test's own (the postmaster
## restarts it, and shared memory with it).  Before, the session spends the
## budget of act_slow (one request a minute) and the counters count it: a
## budget that survived would hold the next request a minute.
DALP_PGPORT=$((DALP_PGPORT + 6)) dalp_start_cluster
dalp_psql -q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION dalp_fdw;
CREATE SERVER act FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$url');
-- another origin than act's, so that its budget is not act's
CREATE SERVER act_slow FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'http://localhost:$port', rate_limit_per_minute '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER act OPTIONS (api_key '$DALP_API_KEY');
CREATE USER MAPPING FOR CURRENT_USER SERVER act_slow OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA act;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (events) FROM SERVER act INTO act;
CREATE FOREIGN TABLE act.slow_f (name text) SERVER act_slow OPTIONS (resource 'factories');
SQL
sess_open
sess_run "SELECT count(*) > 0 FROM act.slow_f;"
[[ $SESS_OUT == t ]] || dalp_die "act_slow: $SESS_OUT"
[[ $(dalp_psql -tAc "SELECT requests FROM dalp_fdw.stats(true) WHERE server = 'act_slow'") == 1 ]] ||
  dalp_die "the cluster-wide counters missed act_slow's request"
simctl faults '{"every": {"slow": 1}, "slow_ms": 10000}' >/dev/null
sess_send "SELECT count(*) FROM act.events WHERE token_address = '$big' AND event_name = 'MintCompleted';"
await_wait network
_dalp_as_pg kill -9 "$dead"
sess_close
for ((i = 0; i < 300; i++)); do
  grep -q 'all server processes terminated; reinitializing' "$DALP_PGLOG" &&
    dalp_psql -tAc "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.1
done
grep -q "terminated by signal 9" "$DALP_PGLOG" || dalp_die "the server log does not show the backend killed"
dalp_psql -tAc "SELECT 1" >/dev/null || dalp_die "the cluster did not come back after the kill -9"
simctl faults '{}' >/dev/null
[[ -z $(dalp_psql -tAc "SELECT pid FROM dalp_fdw.activity") ]] || dalp_die "rows after the restart"
[[ -z $(dalp_psql -tAc "SELECT requests FROM dalp_fdw.stats(true) WHERE requests > 0") ]] ||
  dalp_die "cluster-wide counters survived the restart"
# the budget starts afresh: act_slow's next request leaves at once
t0=$(_sess_now_ms)
[[ $(dalp_psql -tAc "SELECT count(*) > 0 FROM act.slow_f") == t ]] || dalp_die "the first request after the restart failed"
ms=$(($(_sess_now_ms) - t0))
((ms < 5000)) || dalp_die "after the restart, act_slow's request took $ms ms (a stale budget?)"
[[ $(dalp_psql -tAc "SELECT count(*) = 2000 FROM act.events WHERE token_address = '$big'") == t ]] ||
  dalp_die "reading after the restart failed"
dalp_log "kill -9 mid-request: the cluster restarted with no row and fresh counters; act_slow's spent budget is new: its next request took $ms ms"

printf 'ok: shared memory %s bytes; activity during a 100-page scan: %s; take_snapshot: %s; terminated while waiting for the budget: next request +%s ms (2000 planned); terminated and killed mid-request: no row, budget or lock left\n' \
  "$shmem" "$(cut -d';' -f1 "$DALP_TMPDIR/scan_summary")" "$(cat "$DALP_TMPDIR/snap_summary")" "$gap"
