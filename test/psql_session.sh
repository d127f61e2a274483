# shellcheck shell=bash
# test/psql_session.sh: one psql session kept open in a coprocess, for the
# tests that need the same backend across statements (cancels, leaks).
# Source it after test/lib.sh; it runs nothing by itself.
#
#   sess_open             start the session; SESS_BACKEND is its backend pid
#   sess_send SQL         send statements, do not wait for them
#   sess_wait [SECONDS]   wait (default 120 s) until what was sent has run;
#                         its output (errors included, VERBOSITY verbose, so
#                         "ERROR:  57014: ...") is in SESS_OUT; the script
#                         dies if no answer comes in time or psql exits
#   sess_run SQL [SECONDS]  sess_send then sess_wait
#   sess_ms               milliseconds the last sess_run/sess_wait took,
#                         measured from its sess_send
#   sess_close
#
# Only one session at a time: bash keeps one coprocess.

_SESS_END=__dalp_session_end__
SESS_OUT=
SESS_BACKEND=
_sess_t0=
_sess_ms=
_sess_sql=

_sess_now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

sess_open() {
  coproc SESS { "$DALP_PGBIN/psql" -X -q -tA -v ON_ERROR_STOP=0 -v VERBOSITY=verbose 2>&1; }
  # the session is ended with the script, whatever happens
  dalp_atexit sess_close
  sess_run "SELECT pg_backend_pid();" 30
  # shellcheck disable=SC2034 # for the caller
  SESS_BACKEND=$SESS_OUT
}

sess_send() {
  _sess_sql=$1
  _sess_t0=$(_sess_now_ms)
  printf '%s\n\\echo %s\n' "$1" "$_SESS_END" >&"${SESS[1]}"
}

sess_wait() {
  local timeout=${1:-120} line lines=() rc
  while true; do
    rc=0
    IFS= read -r -t "$timeout" line <&"${SESS[0]}" || rc=$?
    if ((rc > 128)); then
      dalp_die "psql session: no answer within $timeout s to: $_sess_sql"
    elif ((rc != 0)); then
      dalp_die "psql session ended (a backend crash?) during: $_sess_sql; it printed: $(printf '%s\n' "${lines[@]}")"
    elif [[ $line == "$_SESS_END" ]]; then
      _sess_ms=$(($(_sess_now_ms) - _sess_t0))
      SESS_OUT=$(printf '%s\n' "${lines[@]}")
      return 0
    fi
    lines+=("$line")
  done
}

sess_run() {
  sess_send "$1"
  sess_wait "${2:-120}"
}

sess_ms() { echo "$_sess_ms"; }

sess_close() {
  local pid=${SESS_PID:-} i
  [[ -n $pid ]] || return 0
  # once psql has exited, bash has closed (and unset) its descriptors; a psql
  # exiting right now (its backend was terminated) must not SIGPIPE the script
  (trap '' PIPE; printf '\\q\n' >&"${SESS[1]}") 2>/dev/null || true
  # a statement still running would hold the \q back: do not wait for it
  for ((i = 0; i < 50; i++)); do _dalp_alive "$pid" || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  SESS_PID=
  return 0
}
