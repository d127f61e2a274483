#!/usr/bin/env bash
# Reads that stay right while the ledger moves.  Against a simulator of its
# own whose mover commits transfers between the pages of a scan (reorder a
# holder up the list, a holder leaving, a new one joining: test/dalp_sim.py,
# class Mover), with pages of 20 holders:
#   - the cost, from the request log, of a token read alone: the marker (its
#     newest event), answered before page 1 is sent, then its pages, then,
#     if there were several, the marker again (1 + 1 for one page, n + 2 for
#     n); an item lookup and a count(*) from meta.total are one request each;
#     in a fan-out, a token of one page is one request, one of several its
#     first page, the marker, every page again and the marker (n + 3);
#   - LEDGER_RUNS (default 200) reads with up to 3 changes injected at random
#     pages: a token's holders, every token's (a fan-out), and count(*)
#     counted by paging (a server without meta.total).  Each result must be
#     the token's /holders of one moment, a state the mover recorded: never
#     a mix of two;
#   - a ledger that moves during every read: ERROR 40001 after
#     ledger_rereads rereads, or with on_ledger_change 'warning' (a table
#     option) a WARNING and the rows of the last read;
#   - count(*) counted by paging drops a holder repeated at a page boundary
#     by a holder joining during the count (no reread);
#   - health_snapshots, which have no id: a snapshot added while they are
#     paged through repeats one at a page boundary, dropped by the
#     composite key.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$DALP_REPO/test/psql_session.sh"

RUNS=${LEDGER_RUNS:-200}
dalp_own_sim 43
runs_dir=$DALP_TMPDIR/ledger_runs
mkdir -p "$runs_dir"

# the mover through curl: it is called twice per run
mover_set() { curl -sf -X POST --data "$1" "$url/_sim/mover" >/dev/null; }
mover_get() { curl -sf "$url/_sim/mover"; }

# "path?page[offset]" of each request logged since the last clear, the
# token's address shortened to <t>.
sim_paths() {
  simctl log | "$DALP_PYTHON" -c 'import json, sys
for e in json.load(sys.stdin):
    q = e["query"]
    p = e["path"].replace(sys.argv[1], "<t>")
    print(p + ("?sort=" + q["sort"] if "sort" in q else "") +
          ("?offset=" + q["page[offset]"] if "page[offset]" in q else ""))' "$1" | tr '\n' ' '
}
# the same, for that token only
token_paths() { sim_paths "$1" | tr ' ' '\n' | grep -F '<t>' | tr '\n' ' '; }

dalp_sim_schema lg "$url" "page_size '20'" "tokens, holders, health_snapshots"
sess_open
declare -A tok
while IFS='|' read -r symbol address; do tok[$symbol]=$address; done < <(
  dalp_psql -tAc "SELECT symbol, address FROM lg.tokens WHERE symbol IN ('ACB30', 'HIF', 'EURSC', 'PN26')")
acb=${tok[ACB30]}

## what it costs
marker="/api/v2/tokens/<t>/events?sort=-blockTimestamp"
simctl clear >/dev/null
sess_run "SELECT count(account) FROM lg.holders WHERE token_address = '${tok[PN26]}';"
[[ $(sim_paths "${tok[PN26]}") == "$marker /api/v2/tokens/<t>/holders " ]] ||
  dalp_die "one page of holders: expected the marker, then the page; the simulator saw: $(sim_paths "${tok[PN26]}")"
simctl clear >/dev/null
sess_run "SELECT count(account) FROM lg.holders WHERE token_address = '$acb';"
pages=$(((SESS_OUT + 19) / 20))
((pages > 2)) || dalp_die "ACB30 has $SESS_OUT holders: too few pages to test"
# $1: the requests before page 1; the pages are in flight together: compare
# them as a set, the marker before them and the one after exactly
check_pages() {
  local want="$1 /api/v2/tokens/<t>/holders " p got wanted
  for ((p = 1; p < pages; p++)); do want+="/api/v2/tokens/<t>/holders?offset=$((p * 20)) "; done
  want+="$marker "
  read -r -a got <<<"$(token_paths "$acb")"
  read -r -a wanted <<<"$want"
  [[ ${got[*]:0:$2} == "${wanted[*]:0:$2}" && ${got[-1]} == "${wanted[-1]}" &&
    $(printf '%s\n' "${got[@]}" | sort) == $(printf '%s\n' "${wanted[@]}" | sort) ]] ||
    dalp_die "$pages pages of holders, $3: expected $want; the simulator saw: ${got[*]}"
}
check_pages "$marker" 1 "one token"
dalp_log "$pages pages of holders: $((pages + 2)) requests (marker, $pages pages, marker)"
# a fan-out (an IN list): page 1 of each token first, the one-page token's
# only request
simctl clear >/dev/null
sess_run "SELECT count(account) FROM lg.holders WHERE token_address IN ('$acb', '${tok[PN26]}');"
[[ $(token_paths "${tok[PN26]}") == "/api/v2/tokens/<t>/holders " ]] ||
  dalp_die "one page of holders in a fan-out: expected one request, the simulator saw: $(token_paths "${tok[PN26]}")"
check_pages "/api/v2/tokens/<t>/holders $marker" 2 "in a fan-out"
dalp_log "$pages pages of holders in a fan-out: $((pages + 3)) requests (page 1, marker, $pages pages, marker)"
holder=$(dalp_psql -tAc "SELECT account FROM lg.holders WHERE token_address = '$acb' LIMIT 1")
simctl clear >/dev/null
sess_run "SELECT count(*) FROM lg.holders WHERE token_address = '$acb';
SELECT balance FROM lg.holders WHERE token_address = '$acb' AND account = '$holder';"
[[ $(sim_paths "$acb") == "/api/v2/tokens/<t>/holders /api/v2/tokens/<t>/holder-balances " ]] ||
  dalp_die "count(*) and an item lookup: expected one request each, the simulator saw: $(sim_paths "$acb")"

## reads while the ledger moves
kinds=('["reorder"]' '["leave"]' '["join"]' '["reorder", "leave", "join"]')
tokens=("$acb" "${tok[EURSC]}" "${tok[HIF]}")
t0=$SECONDS
for ((i = 0; i < RUNS; i++)); do
  mode=$((i % 3))
  token=${tokens[$(((i / 3) % 3))]}
  mover_set "{\"token\": \"$token\", \"kinds\": ${kinds[$((i % 4))]}, \"every\": $((1 + i % 3)), \"times\": $((1 + i % 3)), \"seed\": $i}"
  case $mode in
    0) sql="SELECT account || ' ' || balance_exact FROM lg.holders WHERE token_address = '$token';" ;;
    # lower(): not sent to the API, so every token is read
    1) sql="SELECT account || ' ' || balance_exact FROM lg.holders WHERE lower(token_address) = '$token';" ;;
    2)
      simctl faults '{"every": {"bare_meta": 1}}' >/dev/null
      sql="SELECT count(*) FROM lg.holders WHERE token_address = '$token';"
      ;;
  esac
  sess_run "$sql"
  [[ $SESS_OUT != *ERROR* ]] || dalp_die "run $i: $SESS_OUT"
  printf '%s\n' "$SESS_OUT" >"$runs_dir/rows.$i"
  mover_get >"$runs_dir/mover.$i"
  ((mode != 2)) || simctl faults '{}' >/dev/null
done
mover_set '{}'
secs=$((SECONDS - t0))
"$DALP_PYTHON" - "$runs_dir" "$RUNS" "$secs" <<'PY'
import collections, json, sys
d, runs, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
mixed, changes, kinds, changed_runs = [], 0, collections.Counter(), 0
for i in range(runs):
    lines = [l for l in open("%s/rows.%d" % (d, i)).read().splitlines() if l]
    mover = json.load(open("%s/mover.%d" % (d, i)))
    states = mover["states"]
    changes += mover["changes"]
    kinds.update(mover["kinds"])
    changed_runs += mover["changes"] > 0
    if i % 3 == 2:
        ok = len(lines) == 1 and any(int(lines[0]) == len(s) for s in states)
    else:
        rows = dict(l.split(" ") for l in lines)
        ok = len(rows) == len(lines) and any(rows == s for s in states)
    if not ok:
        mixed.append(i)
print("%s%d runs in %s s: %d changes injected (%s) in %d runs, %d mixed results%s" % (
    "" if mixed else "ok: ", runs, secs, changes, ", ".join("%s %d" % kv for kv in sorted(kinds.items())), changed_runs, len(mixed),
    " (runs %s)" % mixed[:20] if mixed else ""))
sys.exit(1 if mixed or changes < runs // 2 else 0)
PY

## a ledger that never holds still
mover_set "{\"token\": \"$acb\", \"every\": 1}"
simctl clear >/dev/null
sess_run "SELECT count(account) FROM lg.holders WHERE token_address = '$acb';"
[[ $SESS_OUT == *"ERROR:  40001: DALP collection GET /api/v2/tokens/$acb/holders changed while it was read"* &&
  $SESS_OUT == *"each of 3 rereads"* ]] || dalp_die "a ledger that keeps moving: expected ERROR 40001, got: $SESS_OUT"
n=$(simctl log --count)
((n == 1 + 4 * (pages + 1))) ||
  dalp_die "a ledger that keeps moving: expected $((1 + 4 * (pages + 1))) requests (the marker, then 4 reads each ending with a marker), saw $n"
sess_run "ALTER FOREIGN TABLE lg.holders OPTIONS (ADD on_ledger_change 'warning', ADD ledger_rereads '1');
SELECT count(account) FROM lg.holders WHERE token_address = '$acb';"
[[ $SESS_OUT == *"WARNING:  01000: DALP collection GET /api/v2/tokens/$acb/holders changed while it was read; its rows may mix"* &&
  $SESS_OUT == *$'\n'[0-9]* ]] || dalp_die "on_ledger_change 'warning': expected a WARNING and the count, got: $SESS_OUT"
mover_set '{}'
sess_run "ALTER FOREIGN TABLE lg.holders OPTIONS (DROP on_ledger_change, DROP ledger_rereads);"

## count(*) counted by paging drops page-boundary repeats, as a scan does: a
## holder joining above the start of the last page, as it is requested,
## shifts the page before's last holder onto it.  No reread, so that the
## read that shifted is the one counted: its holders, each once.
n=$(dalp_psql -tAc "SELECT count(*) FROM lg.holders WHERE token_address = '$acb'")
pages=$(((n + 19) / 20))
mover_set "{\"token\": \"$acb\", \"kinds\": [\"join\"], \"every\": $((pages - 1)), \"times\": 1}"
simctl faults '{"every": {"bare_meta": 1}}' >/dev/null
sess_run "ALTER FOREIGN TABLE lg.holders OPTIONS (ADD on_ledger_change 'warning', ADD ledger_rereads '0');
SELECT count(*) FROM lg.holders WHERE token_address = '$acb';"
simctl faults '{}' >/dev/null
moved=$(mover_get)
mover_set '{}'
[[ $moved == *'"changes":1,'* && $SESS_OUT == *"WARNING:  01000: DALP collection GET /api/v2/tokens/$acb/holders changed while it was read"* &&
  $SESS_OUT == *"DETAIL:  Its newest change (the newest item of GET /api/v2/tokens/$acb/events) differed before and after its read."$'\n'* &&
  $(grep -cx "$n" <<<"$SESS_OUT") == 1 ]] ||
  dalp_die "count(*) by paging while a holder joins: expected a WARNING (no reread in its detail) and $n (the holders read, each once), got: $SESS_OUT"
dalp_log "count(*) by paging while a holder joined above the last page: $n, the repeat at the page boundary dropped"
sess_run "ALTER FOREIGN TABLE lg.holders OPTIONS (DROP on_ledger_change, DROP ledger_rereads);"

## health_snapshots: a repeat at a page boundary is dropped
sess_run "ALTER SERVER lg OPTIONS (SET page_size '5');
BEGIN;
DECLARE c CURSOR FOR SELECT created_at, service_type, event_type FROM lg.health_snapshots;
FETCH 7 FROM c;"
first=$SESS_OUT
simctl health degraded >/dev/null
sess_run "FETCH ALL FROM c;"
rest=$SESS_OUT
sess_run "CLOSE c; COMMIT; SELECT count(*) FROM lg.health_snapshots;"
total=$SESS_OUT
repeats=$(printf '%s\n%s\n' "$first" "$rest" | sort | uniq -d | wc -l)
rows=$(printf '%s\n%s\n' "$first" "$rest" | grep -c .)
((repeats == 0 && rows == total - 1)) ||
  dalp_die "health_snapshots: $repeats rows read twice, $rows rows read while a snapshot was added, $total after"
dalp_log "health_snapshots: $rows rows read while one was added, none twice"
