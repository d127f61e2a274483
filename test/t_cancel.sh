#!/usr/bin/env bash
# Every wait of a DALP request is interruptible.  A query waiting on a slow
# response, sleeping between retries or waiting for the client-side rate
# limit ends within one second of statement_timeout, pg_cancel_backend
# (SQLSTATE 57014) or pg_terminate_backend; after a cancel the same session
# reads normally and nothing of the cancelled query reaches the API later.
# Starts its own simulator.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

dalp_own_sim 31
# where this test's part of the server log starts
log_start=$(wc -c <"$DALP_PGLOG")

# One server per kind of wait:
#   c_slow     the simulator takes 10 s to answer (default timeouts: 30 s)
#   c_backoff  every request fails with 503; the first backoff is 10-20 s
#   c_rate     1 request a minute: a session's second request waits ~60 s;
#              through "localhost", another origin than the others', so that
#              with dalp_fdw preloaded its budget is not theirs
dalp_factories_server c_slow "$url"
dalp_factories_server c_backoff "$url" "retry_base_ms '20000', max_retries '3'"
dalp_factories_server c_rate "http://localhost:$port" "rate_limit_per_minute '1'"

nfactories=$(dalp_psql -tAc "SELECT count(*) FROM c_slow_f")
((nfactories > 0)) || dalp_die "no factories on the simulator"
# preloaded, the rate limit's budget is the cluster's: spent by the first session
shared=$(dalp_psql -tAc "SELECT current_setting('shared_preload_libraries') ~ 'dalp_fdw'")

# Sets the simulator up for one kind of wait; the request log starts empty.
arm() {
  case $1 in
    slow) simctl faults '{"every": {"slow": 1}, "slow_ms": 10000}' >/dev/null ;;
    backoff) simctl faults '{"every": {"503": 1}}' >/dev/null ;;
    rate) simctl faults '{}' >/dev/null ;;
  esac
  simctl clear >/dev/null
}

# Waits (up to 5 s) until the session's backend is in the wait under test:
# pg_stat_activity shows the Extension wait event for HTTP and for sleeps.
await_wait() {
  local i ev
  for ((i = 0; i < 100; i++)); do
    ev=$(dalp_psql -tAc "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $SESS_BACKEND AND state = 'active'")
    [[ $ev == Extension ]] && return 0
    sleep 0.05
  done
  dalp_die "backend $SESS_BACKEND never waited on the API (wait event: '$ev')"
}

# What the simulator saw, as "status/fault ..." per request.
sim_requests() {
  simctl log | "$DALP_PYTHON" -c 'import json, sys; print(" ".join("%s/%s" % (e["status"], e["fault"]) for e in json.load(sys.stdin)))'
}

# The checks after a cancelled query: 57014, what the API saw, and the
# same session reading normally at once.
after_cancel() {
  local what=$1 expect_log=$2 latency=$3 log
  [[ $SESS_OUT == *"ERROR:  57014"* ]] || dalp_die "$what: expected SQLSTATE 57014, got: $SESS_OUT"
  ((latency < 1000)) || dalp_die "$what: the query ended $latency ms after the cancel (limit 1000 ms)"
  # nothing the cancelled query had queued is sent later
  sleep 0.3
  log=$(sim_requests)
  [[ $log == "$expect_log" ]] || dalp_die "$what: the simulator saw '$log', expected '$expect_log'"
  simctl faults '{}' >/dev/null
  sess_run "SELECT count(*) FROM c_slow_f;"
  [[ $SESS_OUT == "$nfactories" ]] || dalp_die "$what: the next query in the session failed: $SESS_OUT"
  dalp_log "$what: ended $latency ms after the cancel; the session reads again"
}

declare -A latency

sess_open
sess_run "SELECT count(*) FROM c_rate_f;" # takes the rate limit's only token
[[ $SESS_OUT == "$nfactories" ]] || dalp_die "c_rate: $SESS_OUT"

for kind in slow backoff rate; do
  # the simulator answers 503 before the backoff, and nothing else: the
  # slow answer is never sent (the client hung up, status 0); the
  # rate-limited request never leaves the backend
  case $kind in
    slow) expect='0/slow' ;;
    backoff) expect='503/503' ;;
    rate) expect='' ;;
  esac

  # statement_timeout
  arm "$kind"
  sess_run "SET statement_timeout = '500ms'; SELECT count(*) FROM c_${kind}_f; RESET statement_timeout;" 30
  latency[$kind.timeout]=$(($(sess_ms) - 500))
  after_cancel "$kind wait, statement_timeout" "$expect" "${latency[$kind.timeout]}"

  # pg_cancel_backend from another session
  arm "$kind"
  sess_send "SELECT count(*) FROM c_${kind}_f;"
  await_wait
  sleep 0.2
  t0=$(_sess_now_ms)
  [[ $(dalp_psql -tAc "SELECT pg_cancel_backend($SESS_BACKEND)") == t ]] || dalp_die "pg_cancel_backend failed"
  sess_wait 30
  latency[$kind.cancel]=$(($(_sess_now_ms) - t0))
  after_cancel "$kind wait, pg_cancel_backend" "$expect" "${latency[$kind.cancel]}"
done

# the waits above were what they claim to be: a retry was scheduled and a
# rate-limit wait counted
sess_run "SELECT (SELECT retries FROM dalp_fdw.stats() WHERE server = 'c_backoff') || ' ' ||
                 (SELECT rate_limit_waits FROM dalp_fdw.stats() WHERE server = 'c_rate');"
read -r retries waits <<<"$SESS_OUT"
((retries == 2 && waits == 2)) ||
  dalp_die "expected 2 retries scheduled on c_backoff and 2 rate-limit waits on c_rate, got: $SESS_OUT"

# pg_terminate_backend in each kind of wait: the backend exits within 1 s
for kind in slow backoff rate; do
  sess_close
  sess_open
  arm "$kind"
  if [[ $kind == rate && $shared == f ]]; then
    sess_run "SELECT count(*) FROM c_rate_f;" # this backend's only token
    [[ $SESS_OUT == "$nfactories" ]] || dalp_die "c_rate: $SESS_OUT"
  fi
  sess_send "SELECT count(*) FROM c_${kind}_f;"
  await_wait
  sleep 0.2
  t0=$(_sess_now_ms)
  [[ $(dalp_psql -tAc "SELECT pg_terminate_backend($SESS_BACKEND)") == t ]] || dalp_die "pg_terminate_backend failed"
  for ((i = 0; i < 300; i++)); do
    [[ -z $(dalp_psql -tAc "SELECT 1 FROM pg_stat_activity WHERE pid = $SESS_BACKEND") ]] && break
    sleep 0.01
  done
  latency[$kind.terminate]=$(($(_sess_now_ms) - t0))
  ((latency[$kind.terminate] < 1000)) ||
    dalp_die "$kind wait: backend $SESS_BACKEND still there ${latency[$kind.terminate]} ms after pg_terminate_backend"
  dalp_log "$kind wait, pg_terminate_backend: backend gone after ${latency[$kind.terminate]} ms"
done
sess_close
simctl faults '{}' >/dev/null

# the postmaster saw no crash
if tail -c +"$((log_start + 1))" "$DALP_PGLOG" | grep -E 'terminated by signal|was terminated'; then
  dalp_die "a backend crashed (server log above)"
fi

printf 'ok: ms from cancel to end, slow answer / backoff sleep / rate-limit wait: statement_timeout %s/%s/%s, pg_cancel_backend %s/%s/%s, pg_terminate_backend %s/%s/%s\n' \
  "${latency[slow.timeout]}" "${latency[backoff.timeout]}" "${latency[rate.timeout]}" \
  "${latency[slow.cancel]}" "${latency[backoff.cancel]}" "${latency[rate.cancel]}" \
  "${latency[slow.terminate]}" "${latency[backoff.terminate]}" "${latency[rate.terminate]}"
