#!/usr/bin/env bash
# The ledger's reads of its mirror go through event_log's indexes, whatever
# the collation of the caller's arguments: compared in another collation
# than the indexes' (a caller's COLLATE, or "C" from a name argument), the
# lookup of a token's newest event became a walk of the whole mirror (0.4 s
# of a snapshot at a million events), and no result showed it. Every plan
# that take_snapshot and sync_events run (auto_explain, nested statements,
# sequential scans off) must read event_log by an index condition on server
# and token_address.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${DALP_SIM_URL:?the main simulator must run (test/run_all.sh starts it)}"

dalp_own_database "dalp_t_plans_$$"
dalp_sim_server plans "$DALP_SIM_URL"
dalp_psql -q -c "CREATE SCHEMA api" -c "IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER plans INTO api"
token=$(dalp_token api.tokens HIF)
dalp_psql -q -c "CREATE COLLATION plans_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
# the mirror filled first: the calls below read it
dalp_psql -qtA -c "SELECT dalp_fdw.take_snapshot('plans', '$token', now()) IS NOT NULL" >/dev/null

plans=$DALP_TMPDIR/plans.json
for collation in '"C"' plans_ci '"default"'; do
  dalp_psql -qtA 2>>"$plans" >/dev/null <<SQL ||
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_format = json;
SET auto_explain.log_level = notice;
SET enable_seqscan = off;
SELECT dalp_fdw.take_snapshot('plans' COLLATE $collation, '$token' COLLATE $collation, now());
SELECT dalp_fdw.sync_events('plans' COLLATE $collation, '$token' COLLATE $collation);
SQL
    dalp_die "collation $collation: $(grep -m1 '^ERROR' "$plans")"
done

"$DALP_PYTHON" - "$plans" <<'PY'
import json, re, sys

text = open(sys.argv[1]).read()
docs, bad = [], []
decoder = json.JSONDecoder()
for m in re.finditer(r"NOTICE:  duration: [0-9.]+ ms  plan:\n", text):
    doc, _ = decoder.raw_decode(text, m.end())
    docs.append(doc)

def nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)

reads = 0
for doc in docs:
    for node in nodes(doc["Plan"]):
        on_log = node.get("Relation Name") == "event_log" or \
            node.get("Index Name", "").startswith("event_log")
        if not on_log or node["Node Type"] in ("Bitmap Heap Scan", "ModifyTable"):
            continue
        reads += 1
        cond = node.get("Index Cond", "")
        if "server =" not in cond or "token_address =" not in cond:
            bad.append("%s %s (Index Cond: %s) in: %s" % (
                node["Node Type"], node.get("Index Name", ""), cond or "none",
                " ".join(doc["Query Text"].split())[:200]))
if not docs or reads == 0:
    sys.exit("ERROR: auto_explain logged no plan that reads event_log")
if bad:
    sys.exit("ERROR: event_log read without an index condition on server and token_address:\n  "
             + "\n  ".join(bad))
print("ok: %d plans, %d reads of event_log, each by an index condition on server and "
      "token_address, with arguments in collations \"C\", a nondeterministic one and the default"
      % (len(docs), reads))
PY
