#!/usr/bin/env bash
# test/run_all.sh: every test of dalp_fdw, on a fresh Debian 12 machine, as
# root or as a user with sudo, from a clone in any directory.
# Installs what is missing, builds and installs the extension, starts a
# throwaway PostgreSQL 15 and the simulator (test/lib.sh), then runs
#   - test/sim_selftest.py, if present;
#   - a check that the Makefile's REGRESS lists every sql/*.sql suite;
#   - every pg_regress suite (make installcheck), each counted as one test;
#   - every test/t_*.sh (exit 0 = pass), with PGHOST PGPORT PGUSER PGDATABASE
#     DALP_SIM_URL DALP_SIM_PORT DALP_API_KEY DALP_PGLOG DALP_REPO set;
#   - the demo's queries (test/demo.sh against this cluster).
# Exits non-zero on any failure; the last line is "N passed, N failed".
# Environment: DALP_TEST_TIMEOUT (seconds per script, default 900) and those
# of test/lib.sh (DALP_PGPORT, DALP_SIM_PORT, DALP_API_KEY).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DALP_REPO"

DALP_TEST_TIMEOUT=${DALP_TEST_TIMEOUT:-900}
passed=()
failed=()
started=$SECONDS

# Runs at every exit, Ctrl-C included: the logs while they still exist, the
# clean-up, and the closing line last, where CI reads it.
finish() {
  local rc=$?
  # The script's last command returns 0, so rc != 0 means it stopped early
  # (set-up failed, Ctrl-C, kill).
  if ((rc != 0)); then failed+=("run_all.sh stopped before the tests ended (exit $rc)"); fi
  if ((${#failed[@]})); then dalp_print_logs 100; fi
  dalp_stop_all
  printf '\n'
  if ((${#failed[@]})); then printf 'FAILED: %s\n' "${failed[@]}"; fi
  printf 'took %ss\n' $((SECONDS - started))
  printf '%d passed, %d failed\n' "${#passed[@]}" "${#failed[@]}"
  if ((rc == 0 && ${#failed[@]})); then rc=1; fi
  exit "$rc"
}
trap finish EXIT

# make installcheck, each pg_regress test counted; the diffs on a failure.
run_installcheck() {
  local out=$DALP_TMPDIR/installcheck.out rc=0 line n=0 nfail=0
  rm -f regression.diffs # pg_regress writes it here; a stale one would be shown for a build failure
  dalp_log "make installcheck"
  make --no-print-directory installcheck PG_CONFIG="$DALP_PG_CONFIG" 2>&1 | tee "$out" || rc=$?
  # PostgreSQL 15 pg_regress prints "test NAME ... ok|FAILED  12 ms".
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(test[[:space:]]+)?([^[:space:]]+)[[:space:]]+\.\.\.[[:space:]]+([a-zA-Z]+) ]] || continue
    n=$((n + 1))
    if [[ ${BASH_REMATCH[3]} == ok ]]; then
      passed+=("pg_regress ${BASH_REMATCH[2]}")
    else
      failed+=("pg_regress ${BASH_REMATCH[2]}")
      nfail=$((nfail + 1))
    fi
  done <"$out"
  if ((rc != 0 && nfail == 0)); then
    failed+=("make installcheck (exit $rc)")
    nfail=1
  fi
  ((n > 0 || rc != 0)) || dalp_warn "make installcheck ran no pg_regress test (no sql/*.sql suite?)"
  if ((nfail)) && [[ -s regression.diffs ]]; then
    printf '\n----- last 300 lines of %s/regression.diffs -----\n' "$DALP_REPO"
    tail -n 300 regression.diffs
  fi
}

# Every suite in sql/ is listed in the Makefile's REGRESS: one left out
# would silently never run.
check_regress_list() {
  local listed f name missing=()
  listed=" $(make --no-print-directory -s PG_CONFIG="$DALP_PG_CONFIG" -f Makefile -f - dalp-print-regress \
    <<<$'dalp-print-regress:\n\t@echo $(REGRESS)') "
  for f in sql/*.sql; do
    name=${f#sql/}
    name=${name%.sql}
    [[ $listed == *" $name "* ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    failed+=("Makefile: REGRESS lacks ${missing[*]} (sql/*.sql)")
    printf 'FAIL Makefile: add %s to REGRESS\n' "${missing[*]}"
  else
    passed+=("Makefile REGRESS lists every sql/*.sql")
  fi
}

# Runs one test command with a time limit; its output is shown if it fails.
run_test() {
  local name=$1 out rc=0 t0=$SECONDS
  shift
  out=$DALP_TMPDIR/out.${name//[^A-Za-z0-9_.-]/_}
  dalp_log "$name"
  # --foreground: a Ctrl-C still reaches the test.
  timeout --foreground -k 10 "$DALP_TEST_TIMEOUT" "$@" </dev/null >"$out" 2>&1 || rc=$?
  if ((rc == 0)); then
    passed+=("$name")
    printf 'PASS %s (%ss)\n' "$name" $((SECONDS - t0))
    # a test states what it measured on a line starting "ok: "
    grep '^ok: ' "$out" | tail -n 1 | sed 's/^/     /' || true
    return 0
  fi
  failed+=("$name")
  # timeout(1) turns a Ctrl-C of the test into exit 130: stop the run too.
  if ((rc == 130)); then exit 130; fi
  if ((rc == 124)); then
    printf 'FAIL %s: timed out after %ss (DALP_TEST_TIMEOUT)\n' "$name" "$DALP_TEST_TIMEOUT"
  else
    printf 'FAIL %s: exit %s after %ss\n' "$name" "$rc" $((SECONDS - t0))
  fi
  printf -- '----- last 300 lines of the output of %s -----\n' "$name"
  tail -n 300 "$out"
  printf -- '----- end of %s -----\n' "$name"
}

dalp_setup

if [[ -f test/sim_selftest.py ]]; then
  run_test sim_selftest.py "$DALP_PYTHON" test/sim_selftest.py
fi
check_regress_list
run_installcheck
for t in test/t_*.sh; do
  [[ -f $t ]] || continue # no match: the glob stays as written
  run_test "${t#test/}" bash "$t"
done
run_test demo.sh env DALP_DEMO_ATTACH=1 bash test/demo.sh
