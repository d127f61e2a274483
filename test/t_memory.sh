#!/usr/bin/env bash
# A 100,000-event scan streams: the backend's peak memory stays flat, and the
# first row needs one request.  Starts its own simulator with a big token.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 11 --big-token-events 100000

dalp_psql -q <<SQL
DROP SERVER IF EXISTS big CASCADE;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE SERVER big FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$url');
CREATE USER MAPPING FOR CURRENT_USER SERVER big OPTIONS (api_key '$DALP_API_KEY');
DROP SCHEMA IF EXISTS big CASCADE;
CREATE SCHEMA big;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events) FROM SERVER big INTO big;
SQL

token=$(dalp_psql -tAc "SELECT address FROM big.tokens WHERE symbol = 'BIG'")
[[ -n $token ]] || dalp_die "the simulator has no BIG token"

# One session kept open (a coprocess), so the backend's peak resident memory
# (VmHWM) can be read from outside after a warm-up scan and after the whole
# token.
coproc PSQL { dalp_psql -tA; }
ask() { echo "$1" >&"${PSQL[1]}"; read -r line <&"${PSQL[0]}"; echo "$line"; }
bpid=$(ask "SELECT pg_backend_pid();")
hwm() { awk '/VmHWM/ {print $2}' "/proc/$bpid/status"; }
ask "SELECT count(*) FROM (SELECT amount FROM big.events WHERE token_address = '$token' LIMIT 2000) s;" >/dev/null
before=$(hwm)
start=$SECONDS
result=$(ask "SELECT count(*) || ' ' || (sum(amount) > 0) FROM big.events WHERE token_address = '$token';")
elapsed=$((SECONDS - start))
after=$(hwm)
echo '\q' >&"${PSQL[1]}"
wait "$PSQL_PID" 2>/dev/null || true

growth=$((after - before))
printf 'backend %s: VmHWM %s kB after 2,000 events, %s kB after 100,000 (growth %s kB); rows: %s; %ss\n' \
  "$bpid" "$before" "$after" "$growth" "$result" "$elapsed"
[[ $result == "100000 true" ]] || dalp_die "expected 100000 events, got: $result"
((growth < 8192)) || dalp_die "backend memory grew by $growth kB over a 100,000-event scan"

# Streaming: the first row costs one request.
"$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$url" clear >/dev/null
dalp_psql -tAc "SELECT id FROM big.events WHERE token_address = '$token' LIMIT 1" >/dev/null
n=$("$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$url" log --count)
[[ $n == 1 ]] || dalp_die "LIMIT 1 sent $n requests, expected 1"
printf 'ok: 100,000 events in %ss, backend VmHWM %s kB -> %s kB (growth %s kB); first row after 1 request\n' \
  "$elapsed" "$before" "$after" "$growth"
