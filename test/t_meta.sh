#!/usr/bin/env bash
# META.json is valid PGXN metadata (Meta Spec 1.0.0), and the release version
# in META.json, dalp_fdw.control (default_version) and debian/changelog agree:
# test/check_meta.py. Then copies of those files with one defect each must
# fail the check, each with its own message, so the check cannot pass blindly.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check="$DALP_REPO/test/check_meta.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$DALP_PYTHON" "$check" || dalp_die "META.json or the versions are wrong (messages above)"

# must_fail WHAT MESSAGE-PATTERN [check_meta.py args]: the check exits 1 and
# says MESSAGE-PATTERN (an extended regular expression).
rejected=0
must_fail() {
  local what=$1 pattern=$2 out rc=0
  shift 2
  out=$("$DALP_PYTHON" "$check" "$@" 2>&1) || rc=$?
  ((rc == 1)) || dalp_die "check_meta.py passed (exit $rc) a copy with $what; output: $out"
  grep -Eq -- "$pattern" <<<"$out" || dalp_die "check_meta.py failed on $what but did not say /$pattern/: $out"
  dalp_log "rejected: $what"
  rejected=$((rejected + 1))
}

# meta_with PYTHON-STATEMENT: a copy of META.json changed by the statement
# (m is the parsed object); prints the copy's path.
meta_with() {
  local copy
  copy=$(mktemp "$work/META.XXXXXX")
  "$DALP_PYTHON" - "$DALP_REPO/META.json" "$copy" "$1" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(m, open(sys.argv[2], "w"))
EOF
  echo "$copy"
}

must_fail "META.json's version one patch ahead" "version '1\.0\.1', but .*default_version '1\.0'" \
  --meta "$(meta_with 'm["version"] = m["provides"]["dalp_fdw"]["version"] = "1.0.1"')"
must_fail "a provides version other than the version" "provides/dalp_fdw/version '1\.0\.1' differs" \
  --meta "$(meta_with 'm["provides"]["dalp_fdw"]["version"] = "1.0.1"')"
must_fail "a version that is not semantic" "'1\.0' is not a semantic version" \
  --meta "$(meta_with 'm["version"] = "1.0"')"
must_fail "no license" "mandatory field 'license' is missing" \
  --meta "$(meta_with 'del m["license"]')"
must_fail "a license name outside the spec" "'PostgreSQL License' is not a license name" \
  --meta "$(meta_with 'm["license"] = "PostgreSQL License"')"
must_fail "no provides" "mandatory field 'provides' is missing" \
  --meta "$(meta_with 'del m["provides"]')"
must_fail "a provides entry without its file" "/provides/dalp_fdw: the mandatory field 'file' is missing" \
  --meta "$(meta_with 'del m["provides"]["dalp_fdw"]["file"]')"
must_fail "an unknown top-level key" "unknown key 'homepage'" \
  --meta "$(meta_with 'm["homepage"] = "https://example.org"')"
must_fail "an unknown prereq phase" "unknown phase 'install'" \
  --meta "$(meta_with 'm["prereqs"]["install"] = m["prereqs"].pop("runtime")')"
must_fail "a prereq version that is no range" "'15' is not a valid version range" \
  --meta "$(meta_with 'm["prereqs"]["runtime"]["requires"]["PostgreSQL"] = "15"')"
must_fail "a name with a space" "'dalp fdw' is not a valid term" \
  --meta "$(meta_with 'm["name"] = "dalp fdw"')"
must_fail "an abstract that is not a string" "/abstract: must be a non-empty string" \
  --meta "$(meta_with 'm["abstract"] = ["x"]')"

sed "s/^default_version = .*/default_version = '1.1'/" "$DALP_REPO/dalp_fdw.control" >"$work/dalp_fdw.control"
must_fail "a control file at default_version 1.1" "semantic version 1\.1\.0" --control "$work/dalp_fdw.control"

sed '1s/(1\.0\.0-1)/(1.0.1-1)/' "$DALP_REPO/debian/changelog" >"$work/changelog"
cmp -s "$work/changelog" "$DALP_REPO/debian/changelog" && dalp_die "could not alter a copy of debian/changelog"
must_fail "a changelog at 1.0.1-1" "version 1\.0\.1-1 \(upstream 1\.0\.1\) differs" --changelog "$work/changelog"

echo "ok: META.json valid and versions agree; $rejected broken copies rejected"
