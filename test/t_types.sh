#!/usr/bin/env bash
# A role may declare a foreign table's columns with any type.  This test
# generates the matrix: every column source kind (path scalar of each JSON
# kind, path array, path object, raw, named values, token, search echo,
# facet group key, count, json_path columns, an IMPORTed table) x ~40 types
# x every read path (plain scan, LIMIT pushed down, parameterized rescan,
# single-item lookup, count(*), count(*) GROUP BY from meta.facets and from
# paging).  Each cell must return exactly what PostgreSQL's input function
# makes of the value's text (computed from a reference table whose column
# has the catalog's JSON or text type), or fail with an error naming the
# column, its type and the value.  Any backend crash fails the test: the
# postmaster log must not say "terminated by signal", and a session opened
# before the matrix must still be there after it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=psql_session.sh
source "$(dirname "${BASH_SOURCE[0]}")/psql_session.sh"

dalp_own_sim 57

cleanup() {
  dalp_psql -q <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname = 'tt' OR nspname LIKE 'tt\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END $$;
DROP SERVER IF EXISTS tt_sim CASCADE;
SQL
}
cleanup
dalp_psql -q <<SQL
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE SERVER tt_sim FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url '$url', rate_limit_per_minute '1000000');
CREATE USER MAPPING FOR CURRENT_USER SERVER tt_sim OPTIONS (api_key '$DALP_API_KEY');
CREATE SCHEMA tt;
CREATE TYPE tt.word AS ENUM ('bond', 'equity', 'fund', 'MintCompleted', 'TransferCompleted');
CREATE DOMAIN tt.short_text AS text CHECK (length(VALUE) < 12);
CREATE DOMAIN tt.small_int AS int CHECK (VALUE < 10);
CREATE DOMAIN tt.object AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE DOMAIN tt.short_list AS text[] CHECK (cardinality(VALUE) < 3);
CREATE TYPE tt.pair AS (a text, b text);

-- A value of the reference column as PostgreSQL reads its text into a
-- column of type typ (an INSERT into scratch table tbl: the input function,
-- then the type modifier applied as to an assigned value), as a row's
-- text, "(value)"; E'\\\\x01ERR' where PostgreSQL refuses it.  kind: 'json'
-- (the reference column is json: scalars convert from their text, arrays
-- and objects from their JSON, a JSON array into an array type element by
-- element), 'jsonb' (event values folded into one object) or 'text'.
CREATE FUNCTION tt.ref(v text, kind text, typ text, tbl text) RETURNS text
LANGUAGE plpgsql AS \$\$
DECLARE
  base oid := typ::regtype;
  elem oid;
  delim text;
  j json;
  txt text;
  r text;
BEGIN
  IF v IS NULL THEN RETURN '()'; END IF;
  WHILE (SELECT typtype FROM pg_type WHERE oid = base) = 'd' LOOP
    base := (SELECT typbasetype FROM pg_type WHERE oid = base);
  END LOOP;
  SELECT e.oid, e.typdelim INTO elem, delim FROM pg_type e
   WHERE e.oid = (SELECT typelem FROM pg_type WHERE oid = base) AND e.typarray = base;
  IF kind = 'text' OR base IN ('json'::regtype, 'jsonb'::regtype) THEN
    txt := v;
  ELSIF elem IS NOT NULL THEN
    j := v::json;
    IF kind = 'jsonb' OR json_typeof(j) <> 'array' THEN RETURN E'\\\\x01ERR'; END IF;
    WHILE (SELECT typtype FROM pg_type WHERE oid = elem) = 'd' LOOP
      elem := (SELECT typbasetype FROM pg_type WHERE oid = elem);
    END LOOP;
    SELECT '{' || coalesce(string_agg(
             CASE WHEN json_typeof(e) = 'null' THEN 'NULL'
                  ELSE '"' || replace(replace(
                         CASE WHEN json_typeof(e) = 'string'
                               AND elem NOT IN ('json'::regtype, 'jsonb'::regtype)
                              THEN e #>> '{}' ELSE e::text END,
                         '\\', '\\\\'), '"', '\\"') || '"' END, delim ORDER BY n), '') || '}'
      INTO txt FROM json_array_elements(j) WITH ORDINALITY a(e, n);
  ELSE
    j := v::json;
    txt := CASE WHEN json_typeof(j) = 'string' THEN j #>> '{}' ELSE v END;
  END IF;
  BEGIN
    EXECUTE format('INSERT INTO %s VALUES (%L) RETURNING ROW(c)::text', tbl, txt) INTO r;
    RETURN r;
  EXCEPTION WHEN others THEN
    RETURN E'\\\\x01ERR';
  END;
END \$\$;

-- The rows of a query, as text (sorted when asked).
CREATE FUNCTION tt.rows(q text, sorted bool) RETURNS text[]
LANGUAGE plpgsql AS \$\$
DECLARE res text[];
BEGIN
  EXECUTE format('SELECT coalesce(array_agg(r::text %s), ''{}'') FROM (%s) r',
                 CASE WHEN sorted THEN 'ORDER BY r::text' ELSE '' END, q) INTO res;
  RETURN res;
END \$\$;

-- Reference values: the tested column's values, as the reference table
-- (same query, the column with its catalog type) gives them.
CREATE TABLE tt.refs (source text, path text, vals text[], PRIMARY KEY (source, path));
CREATE FUNCTION tt.remember(source text, path text, q text) RETURNS void
LANGUAGE plpgsql AS \$\$
DECLARE vals text[];
BEGIN
  EXECUTE format('SELECT coalesce(array_agg(c::text), ''{}'') FROM (%s) r(c)', q) INTO vals;
  INSERT INTO tt.refs VALUES (source, path, vals);
END \$\$;

-- One cell: the verdict on query q (over a column of type typ) against the
-- reference values.
CREATE FUNCTION tt.cell(source text, path text, typ text, tbl text, col text, kind text, q text)
RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE
  refvals text[] := (SELECT vals FROM tt.refs r WHERE r.source = cell.source
                        AND r.path = CASE WHEN cell.path LIKE 'group%' OR cell.path = 'count'
                                          THEN 'scan' ELSE cell.path END);
  conv text[];
  expect text[];
  got text[];
  msg text;
  state text;
  ctx text;
  refused bool;
BEGIN
  IF refvals IS NULL THEN RETURN 'FAIL no reference values'; END IF;
  conv := ARRAY(SELECT tt.ref(v, kind, typ, tbl) FROM unnest(refvals) WITH ORDINALITY u(v, n) ORDER BY n);
  refused := coalesce(E'\\\\x01ERR' = ANY(conv), false) AND path <> 'count';
  IF path = 'count' THEN
    expect := ARRAY[ROW(cardinality(refvals))::text];
  ELSIF path LIKE 'group%' THEN
    -- "(value)" and its count: "(value,count)"
    expect := ARRAY(SELECT left(c, -1) || ',' || count(*) || ')' FROM unnest(conv) c
                     GROUP BY c ORDER BY 1);
  ELSE
    expect := conv;
  END IF;
  BEGIN
    got := tt.rows(q, path LIKE 'group%');
  EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE, ctx = PG_EXCEPTION_CONTEXT;
  END;
  IF msg IS NULL THEN
    IF refused THEN
      RETURN format('FAIL rows %s where PostgreSQL refuses a value of %s', got, refvals);
    ELSIF got IS DISTINCT FROM expect THEN
      RETURN format('FAIL rows %s, expected %s', got, expect);
    END IF;
    RETURN 'ok rows';
  END IF;
  IF state LIKE 'XX%' OR state LIKE '58%' OR msg ~ 'cache lookup|unrecognized|internal|invalid memory alloc|out of memory' THEN
    RETURN format('FAIL internal error %s: %s', state, msg);
  END IF;
  -- a type without equality cannot be grouped: the planner says so
  IF path LIKE 'group%' AND state = '42883' THEN
    RETURN 'ok no equality';
  END IF;
  IF position(format('column "%s" of type ', col) IN ctx) = 0 OR position(' with value "' IN ctx) = 0 THEN
    RETURN format('FAIL error %s: %s, without the column, its type and the value (context: %s)', state, msg, ctx);
  END IF;
  IF refused THEN
    RETURN 'ok error: ' || msg;
  END IF;
  -- stricter than the input function: true/false, zoned ISO 8601, finite
  IF msg LIKE 'invalid value for column%' THEN
    RETURN 'ok strict: ' || msg;
  END IF;
  RETURN format('FAIL error %s: %s, where PostgreSQL accepts %s', state, msg, refvals);
END \$\$;
SQL

# Values the paths need: a token, the pilot token (few events), one of its
# holders and transactions.
dalp_psql -q <<SQL
CREATE FOREIGN TABLE tt.tokens (address text, symbol text) SERVER tt_sim OPTIONS (resource 'tokens');
SQL
pilot=$(dalp_psql -qAt -c "SELECT address FROM tt.tokens WHERE symbol = 'PN26'")
acb=$(dalp_psql -qAt -c "SELECT address FROM tt.tokens WHERE symbol = 'ACB30'")
dalp_psql -q <<SQL
CREATE FOREIGN TABLE tt.pilot_events (transaction_hash text, sender text) SERVER tt_sim
  OPTIONS (resource 'events', token_address '$pilot');
CREATE FOREIGN TABLE tt.pilot_holders (account text) SERVER tt_sim
  OPTIONS (resource 'holders', token_address '$pilot');
SQL
pilot_tx=$(dalp_psql -qAt -c "SELECT transaction_hash FROM tt.pilot_events LIMIT 1")
pilot_holder=$(dalp_psql -qAt -c "SELECT account FROM tt.pilot_holders LIMIT 1")
[[ -n $pilot && -n $acb && -n $pilot_tx && -n $pilot_holder ]] || dalp_die "the simulator lacks the pilot token's data"

matrix=$DALP_TMPDIR/types.sql
"$DALP_PYTHON" - "$matrix" "$url" "$pilot" "$acb" "$pilot_tx" "$pilot_holder" <<'PY'
import sys

out, sim, pilot, acb, pilot_tx, pilot_holder = sys.argv[1:]

def lit(s):
    return "'" + s.replace("'", "''") + "'"

TYPES = ["int2", "int4", "int8", "float8", "numeric", "numeric(5,2)", "text", "varchar(3)",
         "varchar(42)", "char(5)", "name", "bool", "timestamptz", "timestamptz(0)", "timestamp",
         "date", "interval", "json", "jsonb", "text[]", "int[]", "varchar(3)[]", "bool[]",
         "jsonb[]", "bytea", "tsvector", '"char"', "point", "uuid", "inet", "xml", "int4range",
         "int2vector", "tt.word", "tt.word[]", "tt.short_text", "tt.small_int", "tt.object",
         "tt.short_list", "tt.pair"]

# resource: (table options, base rows condition, rescan key, its value, item key, its value)
RES = {
    "tokens": ("resource 'tokens'", None, "symbol", "ACB30", "address", acb),
    "events": ("resource 'events', token_address %s" % lit(pilot), None, "transaction_hash", pilot_tx, None, None),
    "holders": ("resource 'holders', token_address %s" % lit(pilot), None, "account", pilot_holder, "account", pilot_holder),
    "health": ("resource 'health_services'", None, None, None, None, None),
}
# source: (resource, column, json_path or None, reference kind, extra condition, facet)
SOURCES = {
    "path string": ("tokens", "name", None, "json", None, False),
    "path number": ("tokens", "decimals", None, "json", None, False),
    "path bool": ("tokens", "paused", None, "json", None, False),
    "path timestamp": ("tokens", "created_at", None, "json", None, False),
    "path array": ("tokens", "extensions", None, "json", None, False),
    "json_path object": ("tokens", "factory", "tokenFactory", "json", None, False),
    "json_path big number": ("tokens", "exact", "totalSupplyExact", "json", None, False),
    "raw": ("tokens", "raw", None, "json", None, False),
    "raw imported": ("tokens", "raw", None, "json", None, False),
    "search echo q": ("tokens", "q", None, "text", "q = 'Bond'", False),
    "facet type": ("tokens", "type", None, "json", None, True),
    "named values": ("events", "values", None, "jsonb", None, False),
    "token": ("events", "token_address", None, "text", None, False),
    "facet event_name": ("events", "event_name", None, "json", None, True),
    "search echo involves_address": ("events", "involves_address", None, "text",
                                     "involves_address = %s" % lit(pilot_holder), False),
    "path decimal string": ("events", "block_number", None, "json", None, False),
    "holder balance": ("holders", "balance", None, "json", None, False),
    "single resource": ("health", "chain_id", None, "json", None, False),
}

# an IMPORTed table lives in a schema of its own
def table_name(i, j, source):
    return "tt_t%d_%d" % (i, j) if source == "raw imported" else "tt.t%d_%d" % (i, j)

def table_sql(name, source, typ):
    resource, col, json_path, kind, cond, facet = SOURCES[source]
    opts, _, key, _, item, _ = RES[resource]
    if source == "raw imported":
        return ("CREATE SCHEMA %s;\nIMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER tt_sim INTO %s;\n"
                "ALTER FOREIGN TABLE %s.tokens ALTER COLUMN raw TYPE %s;\n" % (name, name, name, typ))
    cols = ['"%s" %s%s' % (col, typ, " OPTIONS (json_path %s)" % lit(json_path) if json_path else "")]
    for extra in (key, item, cond.split()[0] if cond else None):
        if extra and extra != col and ("%s text" % extra) not in cols:
            cols.append("%s text" % extra)
    return "CREATE FOREIGN TABLE %s (%s) SERVER tt_sim OPTIONS (%s);\n" % (name, ", ".join(cols), opts)

# A search echo column has a value only when its search is sent, which takes
# a comparison with text: only text-like types can be searched.
TEXT_LIKE = ("text", "varchar(3)", "varchar(42)", "tt.short_text")

def queries(source, table, typ):
    resource, col, _, kind, cond, facet = SOURCES[source]
    if kind == "text" and cond and typ not in TEXT_LIKE:
        return {}
    _, _, key, keyval, item, itemval = RES[resource]
    if source == "raw imported":
        table += ".tokens"
    c = '"%s"' % col
    where = " WHERE %s" % cond if cond else ""
    both = lambda extra: " WHERE " + " AND ".join(x for x in (cond, extra) if x)
    q = {"scan": "SELECT %s FROM %s%s" % (c, table, where),
         "limit": "SELECT %s FROM %s%s LIMIT 3" % (c, table, where),
         "count": "SELECT count(*) FROM %s%s" % (table, where),
         "group": "SELECT %s, count(*) FROM %s%s GROUP BY %s" % (c, table, where, c)}
    if key:
        # OFFSET 0 keeps the subquery: each outer row rescans it with a new $n
        q["rescan"] = ("SELECT s.c FROM (VALUES (1), (2)) v(i) CROSS JOIN LATERAL "
                       "(SELECT t.%s FROM %s t%s OFFSET 0) s(c)"
                       % (c, table, both("t.%s = CASE WHEN v.i > 0 THEN %s END" % (key, lit(keyval)))))
    if item:
        q["item"] = "SELECT %s FROM %s%s" % (c, table, both("%s = %s" % (item, lit(itemval))))
    if facet:
        q["group from paging"] = q["group"]
    return q

with open(out, "w") as f:
    w = f.write
    w("SET client_min_messages = warning;\n")
    # the rescan cells: a nested loop passes each outer value to the scan
    w("SET enable_hashjoin = off;\nSET enable_mergejoin = off;\n")
    # the references
    for i, source in enumerate(SOURCES):
        kind = SOURCES[source][3]
        name = "tt_ref%d" % i if source == "raw imported" else "tt.ref%d" % i
        w(table_sql(name, source, kind))
        for path, q in queries(source, name, "text").items():
            if path in ("count", "group", "group from paging"):
                continue
            w("SELECT tt.remember(%s, %s, %s);\n" % (lit(source), lit(path), lit(q)))
    # the scratch tables of tt.ref, the typed tables
    for j, typ in enumerate(TYPES):
        w("CREATE UNLOGGED TABLE tt.cast%d (c %s);\n" % (j, typ))
    for i, source in enumerate(SOURCES):
        for j, typ in enumerate(TYPES):
            w(table_sql(table_name(i, j, source), source, typ))
    # the cells; the facet counts by paging last, with meta.facets emptied
    cells = []
    for i, source in enumerate(SOURCES):
        for j, typ in enumerate(TYPES):
            for path, q in queries(source, table_name(i, j, source), typ).items():
                cells.append((path == "group from paging", source, path, j, q))
    cells.sort(key=lambda c: c[0])
    faulted = False
    for paging, source, path, j, q in cells:
        if paging and not faulted:
            w("\\! curl -sf -o /dev/null -X POST -d '{\"every\": {\"bare_meta\": 1}}' %s/_sim/faults\n" % sim)
            faulted = True
        kind = SOURCES[source][3]
        w("SELECT 'cell', %s, %s, %s, tt.cell(%s, %s, %s, 'tt.cast%d', %s, %s, %s);\n"
          % (lit(source), lit(path), lit(TYPES[j]), lit(source), lit(path), lit(TYPES[j]), j,
             lit(SOURCES[source][1]), lit(kind), lit(q)))
    w("\\! curl -sf -o /dev/null -X POST -d '{}' %s/_sim/faults\n" % sim)
    print(len(cells), file=sys.stderr)
PY

# The pushed-down paths the matrix relies on are the ones taken.
explain() { dalp_psql -qAt -c "SET enable_hashjoin = off; SET enable_mergejoin = off; EXPLAIN (VERBOSE, COSTS OFF) $1"; }
plan=$(explain "SELECT symbol, count(*) FROM tt.tokens GROUP BY symbol")
grep -q 'Aggregate' <<<"$plan" || dalp_die "GROUP BY on a column without facets was pushed down: $plan"

sess_open
sentinel=$SESS_BACKEND
out=$DALP_TMPDIR/types.out
"$DALP_PGBIN/psql" -X -qAt -F ' | ' -v ON_ERROR_STOP=0 -f "$matrix" >"$out" 2>&1 || true
sess_run "SELECT pg_backend_pid();" 30
[[ $SESS_OUT == "$sentinel" ]] || dalp_die "the session opened before the matrix is gone: a backend crashed"
if grep -E 'terminated by signal|PANIC' "$DALP_PGLOG"; then
  dalp_die "a backend crashed during the matrix (server log above)"
fi
grep -q 'connection to server was lost\|server closed the connection' "$out" &&
  dalp_die "the matrix lost its connection: $(grep -m3 -B3 'closed the connection\|connection to server' "$out")"

# The paths the cells meant to take are the ones planned.
p=$(explain "SELECT \"type\", count(*) FROM tt.t10_6 GROUP BY \"type\"")
grep -q Aggregate <<<"$p" && dalp_die "count(*) GROUP BY a facet was not pushed down: $p"
p=$(explain "SELECT \"type\", count(*) FROM tt.t10_33 GROUP BY \"type\"")
grep -q Aggregate <<<"$p" || dalp_die "count(*) GROUP BY an enum column was pushed down: $p"
p=$(explain "SELECT name FROM tt.t0_6 LIMIT 3")
grep -q 'page\[limit\]=3' <<<"$p" || dalp_die "LIMIT was not pushed down: $p"
p=$(explain "SELECT s.c FROM (VALUES (1), (2)) v(i) CROSS JOIN LATERAL (SELECT t.name FROM tt.t0_6 t WHERE t.symbol = CASE WHEN v.i > 0 THEN 'ACB30' END OFFSET 0) s(c)")
grep -q 'filter\[symbol\]\[eq\]=CASE WHEN' <<<"$p" || dalp_die "the rescan is not parameterized: $p"
p=$(explain "SELECT name FROM tt.t0_6 WHERE address = '$acb'")
grep -q "GET /api/v2/tokens/$acb\$" <<<"$p" || dalp_die "no single-item lookup: $p"
p=$(explain "SELECT balance FROM tt.t16_6 WHERE account = '$pilot_holder'")
grep -q "holder-balances" <<<"$p" || dalp_die "no holder lookup: $p"

if grep -q '^psql:.*ERROR' "$out"; then
  grep -m 10 -A 3 '^psql:.*ERROR' "$out"
  dalp_die "the matrix's set-up failed (errors above)"
fi
total=$(grep -c '^cell | ' "$out" || true)
expected=$(grep -c "^SELECT 'cell'" "$matrix")
fails=$(grep '^cell | .* | FAIL' "$out" || true)
if [[ -n $fails ]]; then
  printf '%s\n' "$fails" | head -n 40
  dalp_die "$(wc -l <<<"$fails") of $total cells failed (first 40 above)"
fi
((total == expected)) || { grep -v '^cell | ' "$out" | head -n 20; dalp_die "$total of $expected cells answered (psql output above)"; }
summary=$(sed -n 's/^cell | .* | \(ok [a-z ]*\).*$/\1/p' "$out" | sort | uniq -c | awk '{n=$1; $1=""; printf "%s%s:%s", sep, substr($0, 2), n; sep=", "}')
cleanup
echo "ok: $total cells (column sources x 40 types x read paths), no crash: $summary"
