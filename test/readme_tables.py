#!/usr/bin/env python3
"""
readme_tables: README.md's list of foreign tables, rendered from the catalog.

The block between `<!-- tables: ... -->` and `<!-- /tables -->` in README.md
is generated from dalp_fdw.catalog_resources() and dalp_fdw.catalog_columns()
(src/catalog.c), so the documentation says what the code plans and decodes.
README.md's option list ("## Options") is written by hand: --check also
compares its options, where they are accepted and their defaults with
dalp_fdw.catalog_options() (src/options.c).

  readme_tables.py            print the block
  readme_tables.py --check    exit 1, showing a diff, if README.md differs
  readme_tables.py --write    rewrite the block in README.md

It reads the catalog with psql (found on PATH) from the database that the
usual PG* environment variables name; dalp_fdw must be installed there.
Python 3 standard library only.
"""
import argparse
import difflib
import json
import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
BEGIN_RE = re.compile(r"^<!-- tables: .* -->$", re.M)
END = "<!-- /tables -->"

# in catalog order: the order IMPORT FOREIGN SCHEMA creates tables and columns in
QUERY = """
SELECT json_build_object(
  'resources', (SELECT json_agg(r ORDER BY r.ordinality)
                  FROM dalp_fdw.catalog_resources() WITH ORDINALITY AS r),
  'columns', (SELECT json_agg(c ORDER BY c.ordinality)
                FROM (SELECT c.*, quote_ident(c.column_name) AS sql_name
                        FROM dalp_fdw.catalog_columns() WITH ORDINALITY AS c) c),
  'options', (SELECT json_agg(o) FROM dalp_fdw.catalog_options() o))
"""

# PostgreSQL's type names as the README writes them; text is left unsaid
SHORT_TYPES = {"integer": "int", "boolean": "bool", "timestamp with time zone": "timestamptz"}

# API operator -> SQL, in the order the README lists them
SQL_OPS = (("eq", "="), ("ne", "<>"), ("iLike", "ILIKE"), ("inArray", "IN"), ("notInArray", "NOT IN"))
RANGE_OPS = {"gt", "gte", "lt", "lte"}


def read_catalog():
    try:
        out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", QUERY],
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("readme_tables: psql not found on PATH")
    except subprocess.CalledProcessError as e:
        sys.exit("readme_tables: reading the catalog failed:\n" + e.stderr)
    catalog = json.loads(out)
    if not catalog["resources"] or not catalog["columns"]:
        sys.exit("readme_tables: the catalog functions returned no rows")
    return catalog


def code(s):
    return "`%s`" % s


def api_path(path):
    """/api/v2/tokens/{token}/events -> /tokens/{token}/events (the README's
    paths are relative to /api/v2)."""
    return path[len("/api/v2"):] if path.startswith("/api/v2") else path


def column_text(col):
    t = SHORT_TYPES.get(col["type"], col["type"])
    return code(col["sql_name"] if t == "text" else "%s %s" % (col["sql_name"], t))


def ops_text(names, ops):
    """`name/symbol = / <> / ILIKE / IN`, or `created_at` ranges."""
    ops = set(ops)
    sql = [s for api, s in SQL_OPS if api in ops]
    rest = ops - RANGE_OPS - {api for api, _ in SQL_OPS}
    if rest:
        sys.exit("readme_tables: no SQL wording for API operators %s" % sorted(rest))
    ranges = ops & RANGE_OPS
    if ranges and ranges != RANGE_OPS:
        sql += [s for api, s in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")) if api in ranges]
        ranges = set()
    cols = "/".join(names)
    if not sql:
        return "%s ranges" % code(cols)
    return code("%s %s" % (cols, " / ".join(sql))) + (", ranges" if ranges else "")


def pushdown_text(res, cols):
    """What of a table's conditions, sort, limit and counts goes to the API,
    in the planner's terms (src/deparse.c, src/plan.c): the token path, the
    single-item lookup, search keys, filters, sort, LIMIT/OFFSET and
    count(*)."""
    if not res["collection"]:
        return "nothing: one request returns every row"
    one_token = " (one token)" if res["per_token"] else ""
    parts = []
    for c in cols:
        if c["source"] == "token":
            parts.append(code("%s = / IN / join" % c["sql_name"]))
    if res["item_key"]:
        item = api_path(res["item_path"]).replace("{key}", "{%s}" % res["item_key"])
        parts.append("%s (%s)" % (code(res["item_key"] + " ="), code("GET " + item)))
    for c in cols:
        if c["source"] == "search" and c["filter_ops"]:
            parts.append(ops_text([c["sql_name"]], c["filter_ops"]) + " (search)")
    # columns with the same operators are named together: `name/symbol = / IN`
    groups = []
    for c in cols:
        if c["source"] == "search" or not c["filter_ops"]:
            continue
        for g in groups:
            if g["ops"] == c["filter_ops"]:
                g["names"].append(c["sql_name"])
                break
        else:
            groups.append({"ops": c["filter_ops"], "names": [c["sql_name"]]})
    parts += [ops_text(g["names"], g["ops"]) for g in groups]
    sorts = [c["sql_name"] for c in cols if c["sort_field"]]
    if sorts:
        notes = ["one token"] if res["per_token"] else []
        if res["sort_ties"]:
            notes.append("the API breaks ties by %s" % code(", ".join(res["sort_ties"])))
        parts.append(code("ORDER BY %s [DESC]" % "/".join(sorts)) +
                     (" (%s)" % "; ".join(notes) if notes else ""))
    parts.append(code("LIMIT/OFFSET") + one_token)
    parts.append(code("count(*)"))
    parts += [code("count(*) GROUP BY %s" % c["sql_name"]) for c in cols if c["facet"]]
    return ", ".join(parts)


def render(catalog):
    lines = ["| table | reads | columns | pushed down |", "| --- | --- | --- | --- |"]
    for res in catalog["resources"]:
        cols = [c for c in catalog["columns"] if c["resource"] == res["resource"]]
        reads = code("GET " + api_path(res["api_path"]))
        if res["rows_field"]:
            reads += " (rows: %s)" % code(res["rows_field"])
        lines.append("| %s | %s | %s | %s |" % (code(res["resource"]), reads,
                                                 ", ".join(column_text(c) for c in cols),
                                                 pushdown_text(res, cols)))
    lines += [
        "",
        "Columns are `text` unless a type is given. `join` is a join on",
        "`token_address`: with another DALP table, one scan reading the tokens",
        "together; with a local table, a parameterized scan per outer token (see",
        "\"Joins\" below). `ORDER BY` a text",
        "column goes to the API only under a \"C\" collation (the API orders strings",
        "by code point). `SELECT * FROM dalp_fdw.catalog_columns()` lists every",
        "column with the JSON path it reads and the API filter it maps to;",
        "`dalp_fdw.catalog_resources()` lists the paths.",
    ]
    return "\n".join(lines) + "\n"


# README's words for where an option goes, and for having no default
README_WHERE = {"server": "server", "table": "table", "foreign table": "table",
                "user mapping": "user mapping", "column": "column"}
NO_DEFAULT = {"required", "none", "system store", "by name"}


def readme_options(text):
    """{option: (set of where, default text)} from the "## Options" table;
    a row may name several options, with one default each or one for all."""
    m = re.search(r"^## Options\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        sys.exit("readme_tables: README.md has no '## Options' section")
    options = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 4 or cells[0] in ("where", "---"):
            continue
        names = re.findall(r"`([a-z_]+)`", cells[1])
        defaults = [d.strip().strip("`") for d in cells[2].split(", ")]
        if len(defaults) == 1:
            defaults *= len(names)
        if len(defaults) != len(names):
            sys.exit("readme_tables: README.md's option row '%s' gives %d defaults for %d options"
                     % (cells[1], len(defaults), len(names)))
        where = {README_WHERE.get(w.strip(), w.strip()) for w in cells[0].split(",")}
        for name, default in zip(names, defaults):
            if name in options:
                sys.exit("readme_tables: README.md lists option %s twice" % name)
            options[name] = (where, default)
    return options


def option_problems(text, catalog):
    """What README.md's option list says otherwise than the option rows."""
    listed = readme_options(text)
    problems = []
    for o in catalog["options"]:
        name = o["option"]
        if name not in listed:
            problems.append("option %s is missing" % name)
            continue
        where, default = listed.pop(name)
        if where != set(o["accepted_in"]):
            problems.append("option %s: README says %s, the code accepts it in %s"
                            % (name, ", ".join(sorted(where)), ", ".join(o["accepted_in"])))
        if o["default_value"] is None and default not in NO_DEFAULT:
            problems.append("option %s: README gives default %s, the code none" % (name, default))
        elif o["default_value"] is not None and default != o["default_value"]:
            problems.append("option %s: README gives default %s, the code %s"
                            % (name, default, o["default_value"]))
    problems += ["option %s is no option of the code" % name for name in listed]
    return problems


def split_readme(text):
    begins = list(BEGIN_RE.finditer(text))
    if len(begins) != 1 or text.count(END) != 1:
        sys.exit("readme_tables: README.md must hold exactly one '<!-- tables: ... -->' line "
                 "and one '%s' line" % END)
    start = begins[0].end() + 1
    end = text.index(END)
    if end < start:
        sys.exit("readme_tables: '%s' comes before the opening marker" % END)
    return text[:start], text[start:end], text[end:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail with a diff if README.md differs")
    mode.add_argument("--write", action="store_true", help="rewrite the block in README.md")
    ap.add_argument("--readme", default=README, help="default: the repository's README.md")
    a = ap.parse_args()

    catalog = read_catalog()
    block = render(catalog)
    if not (a.check or a.write):
        sys.stdout.write(block)
        return
    with open(a.readme, encoding="utf-8") as f:
        text = f.read()
    head, current, tail = split_readme(text)
    if a.write:
        if current != block:
            with open(a.readme, "w", encoding="utf-8") as f:
                f.write(head + block + tail)
        return
    if current != block:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), block.splitlines(True),
                                                   "README.md (tables block)", "from the catalog"))
        sys.exit("readme_tables: README.md's table list differs from the catalog; "
                 "run test/readme_tables.py --write")
    problems = option_problems(text, catalog)
    if problems:
        sys.exit("readme_tables: README.md's option list differs from src/options.c:\n  "
                 + "\n  ".join(problems))


if __name__ == "__main__":
    main()
