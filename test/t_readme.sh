#!/usr/bin/env bash
# README.md lists the foreign tables as the catalog defines them: the block
# between "<!-- tables: ... -->" and "<!-- /tables -->" must equal what
# test/readme_tables.py renders from dalp_fdw.catalog_resources() and
# dalp_fdw.catalog_columns(); on a difference this fails and shows the diff
# (fix: test/readme_tables.py --write).  Its option list must name every
# option of dalp_fdw.catalog_options(), where it goes and its default.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A database of its own, so that the extension's state in others does not matter.
dalp_own_database "dalp_readme_$$"
altered=$DALP_TMPDIR/README.md

"$DALP_PYTHON" "$DALP_REPO/test/readme_tables.py" --check ||
  dalp_die "README.md's table list differs from the catalog (diff above); run test/readme_tables.py --write"

# The check must notice a difference: a README with one column less fails it.
sed '0,/`decimals int`, /s///' "$DALP_REPO/README.md" >"$altered"
cmp -s "$altered" "$DALP_REPO/README.md" && dalp_die "could not alter a copy of README.md"
if "$DALP_PYTHON" "$DALP_REPO/test/readme_tables.py" --check --readme "$altered" >/dev/null 2>&1; then
  dalp_die "a README.md with a column missing passed the check"
fi
# ... and so must a default in the option list that is not the code's.
sed 's/^| server | `page_size` | 200 |/| server | `page_size` | 100 |/' "$DALP_REPO/README.md" >"$altered"
cmp -s "$altered" "$DALP_REPO/README.md" && dalp_die "could not alter a copy of README.md's options"
if "$DALP_PYTHON" "$DALP_REPO/test/readme_tables.py" --check --readme "$altered" >/dev/null 2>&1; then
  dalp_die "a README.md with a wrong option default passed the check"
fi
tables=$(dalp_psql -tA -c "SELECT count(*) FROM dalp_fdw.catalog_resources()")
options=$(dalp_psql -tA -c "SELECT count(*) FROM dalp_fdw.catalog_options()")
echo "ok: README.md lists the $tables foreign tables of the catalog, with their columns and pushdown, and its $options options with their defaults"
