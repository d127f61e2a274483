#!/usr/bin/env bash
# Several sessions run sync_events for the same token at the same moment: no
# event is mirrored twice, none is lost, the inserted counts add up to what
# the API holds, and the checkpoint ends at the last event. Each round holds
# the sessions at a gate (a lock on dalp_fdw_ledger.sync_state) until all four wait
# there, then releases them together: the first round is also the first use
# of the server (its private schema is created while the others wait), the
# second mirrors appended events, the third a reorg, the fourth races two
# syncs against a snapshot. Its own simulator, with 30 ms on every request
# so that the runs overlap, and its own database.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dalp_own_sim 41

dalp_own_database "dalp_sync_conc_$$"
dalp_sim_server conc "$url" "page_size '100'"
dalp_psql -q -c "CREATE SCHEMA api" -c "IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events) FROM SERVER conc INTO api"
token=$(dalp_token api.tokens HIF)
simctl faults '{"latency_ms": 30}' >/dev/null

out=$DALP_TMPDIR/conc
mkdir -p "$out"

# round N SQL...: runs each SQL in its own session, all held at the gate
# until every one waits there; each session's output is in $out/N.I.
round() {
  local n=$1 i waiting line pids=()
  shift
  coproc GATE { dalp_psql -qtA; }
  echo "BEGIN; LOCK TABLE dalp_fdw_ledger.sync_state IN EXCLUSIVE MODE; SELECT 'locked';" >&"${GATE[1]}"
  if ! read -r line <&"${GATE[0]}" || [[ $line != locked ]]; then dalp_die "round $n: the gate did not lock"; fi
  i=0
  for sql in "$@"; do
    i=$((i + 1))
    dalp_psql -qtA -c "$sql" >"$out/$n.$i" 2>&1 &
    pids+=($!)
  done
  for ((t = 0; t < 300; t++)); do
    waiting=$(dalp_psql -tAc "SELECT count(*) FROM pg_stat_activity
                               WHERE datname = current_database() AND wait_event_type = 'Lock'
                                 AND query NOT LIKE '%pg_stat_activity%'")
    ((waiting == $#)) && break
    sleep 0.1
  done
  ((waiting == $#)) || dalp_die "round $n: $waiting of $# sessions reached the gate"
  echo "COMMIT;" >&"${GATE[1]}"
  echo '\q' >&"${GATE[1]}"
  wait "$GATE_PID" 2>/dev/null || true
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || dalp_die "round $n: session $((i + 1)) failed: $(cat "$out/$n.$((i + 1))")"
  done
}

# sum FIELD N: the sum of field FIELD (1 inserted, 2 retracted) over the
# sync_events sessions of round N.
sum() { cat "$out/$2".* | awk -F'|' -v f="$1" '/^[0-9]+\|[0-9]+$/ {s += $f} END {print s + 0}'; }

# The mirror's invariants: no event twice among the rows not retracted,
# exactly the API's events, the checkpoint at the last of them.
check() {
  local r
  r=$(dalp_psql -tA <<SQL
WITH m AS (SELECT id, transaction_hash, block_number, tx_index FROM dalp_fdw.event_log
            WHERE server = 'conc' AND token_address = '$token' AND retracted_at IS NULL),
a AS (SELECT id, transaction_hash, block_number, tx_index FROM api.events WHERE token_address = '$token')
SELECT (SELECT count(*) - count(DISTINCT m) FROM m) || ' duplicates, '
    || (SELECT count(*) FROM (TABLE m EXCEPT TABLE a) x) || ' stale, '
    || (SELECT count(*) FROM (TABLE a EXCEPT TABLE m) x) || ' missing, checkpoint '
    || (SELECT CASE WHEN s.checkpoint_time = (SELECT max(block_timestamp) FROM api.events WHERE token_address = '$token')
                    THEN 'at the last event' ELSE 'wrong' END
          FROM dalp_fdw.sync_state s WHERE s.server = 'conc' AND s.token_address = '$token');
SQL
)
  [[ $r == "0 duplicates, 0 stale, 0 missing, checkpoint at the last event" ]] || dalp_die "$1: $r"
}

sync="SELECT inserted, retracted FROM dalp_fdw.sync_events('conc', '$token')"
total=$(dalp_psql -tAc "SELECT count(*) FROM api.events WHERE token_address = '$token'")

round 1 "$sync" "$sync" "$sync" "$sync"
[[ $(sum 1 1) == "$total" ]] || dalp_die "first use: the sessions inserted $(sum 1 1) events, the token has $total"
check "first use"
dalp_log "round 1: 4 sessions inserted $(sum 1 1) of $total events"

simctl append "$token" 25 >/dev/null
round 2 "$sync" "$sync" "$sync" "$sync"
[[ $(sum 1 2) == 25 ]] || dalp_die "after 25 appended events the sessions inserted $(sum 1 2)"
check "after appending"

reorg=$(simctl reorg "$token" 6 4)
removed=$("$DALP_PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)["removed"]))' <<<"$reorg")
round 3 "$sync" "$sync" "$sync" "$sync"
[[ $(sum 1 3) == 4 && $(sum 2 3) == "$removed" ]] ||
  dalp_die "after a reorg of $removed events replaced by 4 the sessions inserted $(sum 1 3), retracted $(sum 2 3)"
check "after a reorg"

# The snapshot syncs too, under the same lock: whichever session comes first
# mirrors the 10 new events, and the snapshot sees all of them.
simctl append "$token" 10 >/dev/null
rows=$(dalp_psql -tAc "SELECT count(*) FROM dalp_fdw.event_log")
round 4 "$sync" "$sync" "SELECT 'snapshot ' || dalp_fdw.take_snapshot('conc', '$token', now())"
new_rows=$(($(dalp_psql -tAc "SELECT count(*) FROM dalp_fdw.event_log") - rows))
((new_rows == 10)) || dalp_die "round 4: 10 appended events, $new_rows rows added to the mirror"
snap=$(dalp_psql -tAc "SELECT reconciled, events_replayed = $((total + 25 - removed + 4 + 10))
                         FROM dalp_fdw.snapshots ORDER BY id DESC LIMIT 1")
[[ $snap == 't|t' ]] || dalp_die "the snapshot taken during the syncs (reconciled, all events replayed): $snap"
check "syncs racing a snapshot"

echo "ok: 4 rounds of concurrent syncs (first use, append, reorg, with a snapshot): no duplicate, nothing lost, checkpoint at the last event"
