#!/usr/bin/env bash
# test/pkg_test.sh: the Debian package postgresql-15-dalp-fdw end to end, as
# root on Debian 12. Slow (a package build and lintian), so test/run_all.sh
# leaves it out; run it alone:  bash test/pkg_test.sh
#
#  1. builds the package with `dpkg-buildpackage -us -uc -b` in a copy of the
#     source tree (tracked and new files, no build products), and runs lintian
#     on it: any tag that debian/*.lintian-overrides does not explain fails;
#  2. the .deb holds the library, the control file and the SQL script, plus
#     the copyright and changelog every Debian package carries and its lintian
#     overrides, nothing else;
#     it depends on the runtime package of every library dalp_fdw.so links
#     (libcurl, json-c), never on a -dev package;
#  3. deletes the build tree, installs the .deb (apt-get) from a directory of
#     its own into a PostgreSQL lib dir holding no dalp_fdw, starts a fresh
#     cluster from /, runs CREATE EXTENSION dalp_fdw and reads the simulator
#     through it: the token list and one token's events equal what the
#     simulator's API says, and the backend mapped the packaged library;
#  4. purges the package: no file it installed is left, dpkg knows it no more.
#
# dpkg's database is the machine's, so the package is purged at every exit,
# and two runs take turns (a lock). On a machine others share, run it where
# PostgreSQL's lib and extension dirs are private to you, so the installed
# files never reach anyone else's server.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((EUID == 0)) || dalp_die "run test/pkg_test.sh as root: it installs and purges a package"

pkg=postgresql-15-dalp-fdw
libdir=$("$DALP_PG_CONFIG" --pkglibdir)
extdir=$("$DALP_PG_CONFIG" --sharedir)/extension
apt_get() {
  # Others may run apt-get or dpkg at the same time: wait for their lock.
  env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120 "$@"
}
pkg_status() { dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true; }
# The package names in a Depends value, one a line (versions, alternatives
# and architecture qualifiers dropped).
dep_names() { sed 's/(.*)//; s/:[a-z0-9]*//; s/[[:space:]]//g' <<<"${1//[,|]/$'\n'}" | grep -v '^$'; }
# The paths in a .deb, directories included, one a line.
deb_paths() { dpkg-deb --fsys-tarfile "$1" | tar -t | sed 's|^\./|/|; s|/$||' | grep -v '^$'; }
# The package that owns a shared library, by any of the names merged /usr
# gives it (dpkg records the path the package ships).
lib_owner() {
  local p q
  for p in "$1" "$(readlink -f "$1")"; do
    for q in "$p" "${p#/usr}" "/usr$p"; do
      dpkg -S "$q" 2>/dev/null | head -n 1 | cut -d: -f1 | grep . && return 0
    done
  done
  return 1
}

installed_here=
cleanup() {
  local rc=$?
  dalp_stop_all
  if [[ -n $installed_here && -n $(pkg_status) ]]; then
    dalp_log "purging $pkg (clean-up)"
    apt_get purge -y "$pkg" >/dev/null || dalp_warn "could not purge $pkg: apt-get purge $pkg"
  fi
  exit "$rc"
}
trap cleanup EXIT

exec 9>/tmp/dalp_fdw_pkg_test.lock
flock -w 900 9 || dalp_die "another test/pkg_test.sh has held /tmp/dalp_fdw_pkg_test.lock for 15 minutes"

DALP_APT_PACKAGES+=("${DALP_PKG_APT_PACKAGES[@]}")
dalp_install_deps
dalp_start_sim # creates DALP_TMPDIR as well

# --- 1. build and lintian -----------------------------------------------------
src=$DALP_TMPDIR/build/dalp-fdw
mkdir -p "$src"
if git -C "$DALP_REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$DALP_REPO" && git ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    tar -c --null -T -) | tar -x -C "$src"
else # not a clone: the package build's clean step removes build products
  tar -C "$DALP_REPO" --exclude=.git -c . | tar -x -C "$src"
fi
dalp_log "building $pkg: dpkg-buildpackage -us -uc -b (log: $DALP_TMPDIR/build.log)"
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$DALP_TMPDIR/build.log" 2>&1 ||
  { tail -n 60 "$DALP_TMPDIR/build.log" >&2; dalp_die "dpkg-buildpackage failed (log tail above)"; }
debs=("$DALP_TMPDIR"/build/"$pkg"_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || dalp_die "expected one ${pkg}_*.deb, found: ${debs[*]}"
mkdir "$DALP_TMPDIR/pkg"
deb=$DALP_TMPDIR/pkg/${debs[0]##*/}
mv "${debs[0]}" "$deb"
rm -rf "$DALP_TMPDIR/build" # the build tree is out of reach from here on
dalp_log "built ${deb##*/}"

dalp_log "lintian ${deb##*/}"
lint=(lintian --pedantic -I -E --fail-on "error,warning,info,pedantic,experimental" "$deb")
# lintian advises against root; it only reads the .deb.
runuser -u nobody -- "${lint[@]}" || dalp_die "lintian reports tags (above) that debian/$pkg.lintian-overrides does not explain"

# --- 2. contents and dependencies --------------------------------------------
expected=$(printf '%s\n' "$libdir/dalp_fdw.so" "$extdir/dalp_fdw.control" "$extdir/dalp_fdw--1.0.sql" \
  "/usr/share/doc/$pkg/copyright" "/usr/share/doc/$pkg/changelog.Debian.gz" \
  "/usr/share/lintian/overrides/$pkg" | sort)
files=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sed 's|^\./|/|' | sort)
[[ $files == "$expected" ]] ||
  dalp_die "the package holds other files than the extension's: $(diff <(echo "$expected") <(echo "$files"))"

depends=$(dpkg-deb -f "$deb" Depends)
dalp_log "Depends: $depends"
dep_names "$depends" | grep -q -- '-dev$' && dalp_die "the package depends on a -dev package: $depends"
dep_names "$depends" | grep -qx postgresql-15 || dalp_die "the package does not depend on postgresql-15: $depends"
mkdir "$DALP_TMPDIR/unpacked"
dpkg-deb -x "$deb" "$DALP_TMPDIR/unpacked"
needed=$(readelf -d "$DALP_TMPDIR/unpacked$libdir/dalp_fdw.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
grep -qx 'libcurl.so.*' <<<"$needed" || dalp_die "dalp_fdw.so does not link libcurl: $needed"
for soname in $needed; do
  [[ $soname == libc.so.* || $soname == ld-linux* ]] && continue
  path=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|x32|64/ { print $NF; exit }')
  [[ -n $path ]] || path=$(ldconfig -p | awk -v s="$soname" '$1 == s { print $NF; exit }')
  [[ -n $path ]] || dalp_die "$soname (linked by dalp_fdw.so) is not installed"
  owner=$(lib_owner "$path") || dalp_die "no package owns $path ($soname)"
  dep_names "$depends" | grep -qxF -- "$owner" ||
    dalp_die "dalp_fdw.so links $soname (package $owner), which Depends lacks: $depends"
  dalp_log "links $soname: Depends has $owner"
done

# --- 3. install on a PostgreSQL that never saw the source tree ---------------
[[ -z $(pkg_status) ]] || dalp_die "$pkg is already known to dpkg ($(pkg_status)): purge it first"
stray=$(find "$libdir" "$extdir" -maxdepth 1 -name 'dalp_fdw*')
[[ -z $stray ]] || dalp_die "dalp_fdw files not from the package (make install?) are in the way: $stray; remove them"
# JIT inlining bitcode of a make install: never loaded as the library, but say so.
stray=$(find "$libdir/bitcode" -maxdepth 1 -name 'dalp_fdw*' 2>/dev/null || true)
[[ -z $stray ]] || dalp_warn "bitcode of an earlier make install (not used by this test): $stray"
if mountpoint -q "$libdir"; then
  dalp_log "$libdir is a private mount: the package's files stay in this namespace"
fi

# Which of the package's paths (directories included) exist already: after
# the purge, every other one must be gone.
pkg_paths=$(deb_paths "$deb")
existing=$(while IFS= read -r p; do if [[ -e $p ]]; then echo "$p"; fi; done <<<"$pkg_paths")

dalp_log "installing ${deb##*/}"
installed_here=1
apt_get install -y --no-install-recommends "$deb" >"$DALP_TMPDIR/install.log" 2>&1 ||
  { cat "$DALP_TMPDIR/install.log" >&2; dalp_die "apt-get install ${deb##*/} failed (output above)"; }
[[ $(pkg_status) == installed ]] || dalp_die "$pkg is not installed after apt-get install ($(pkg_status))"

cd / # the server and the clients start far from any source tree
dalp_start_cluster
version=$(dalp_psql -qAt -c "CREATE EXTENSION dalp_fdw" -c "SELECT extversion FROM pg_extension WHERE extname = 'dalp_fdw'")
dalp_log "CREATE EXTENSION dalp_fdw: version $version"

dalp_psql -q -v url="$DALP_SIM_URL" -v key="$DALP_API_KEY" <<'SQL'
CREATE SERVER sim FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'url');
CREATE USER MAPPING FOR CURRENT_USER SERVER sim OPTIONS (api_key :'key');
CREATE SCHEMA dalp;
IMPORT FOREIGN SCHEMA v2 FROM SERVER sim INTO dalp;
SQL

# The simulator's own answer, read over HTTP by simctl.py: "ADDRESS SYMBOL EVENTS".
"$DALP_PYTHON" "$DALP_REPO/test/simctl.py" tokens | sort >"$DALP_TMPDIR/sim_tokens"
[[ -s $DALP_TMPDIR/sim_tokens ]] || dalp_die "the simulator lists no tokens"
fdw_tokens=$(dalp_psql -qAt -F ' ' -c "SELECT address, symbol FROM dalp.tokens ORDER BY address")
sim_tokens=$(cut -d ' ' -f 1,2 "$DALP_TMPDIR/sim_tokens" | sort)
[[ $fdw_tokens == "$sim_tokens" ]] ||
  dalp_die "dalp.tokens differs from the simulator's /tokens: $(diff <(echo "$sim_tokens") <(echo "$fdw_tokens"))"
ntokens=$(wc -l <<<"$fdw_tokens")

# Every event row of the token with the most events below 1000, several pages
# (count(DISTINCT) fetches the rows; count(*) could be the API's total).
read -r token _ sim_events < <(sort -k 3,3n "$DALP_TMPDIR/sim_tokens" | awk '$3 < 1000' | tail -n 1)
[[ -n $token ]] || dalp_die "the simulator has no token with fewer than 1000 events"
fdw_events=$(dalp_psql -qAt -v t="$token" <<'SQL'
SELECT count(DISTINCT id) FROM dalp.events WHERE token_address = :'t';
SQL
)
[[ $fdw_events == "$sim_events" ]] ||
  dalp_die "dalp.events has $fdw_events rows for $token, the simulator $sim_events"

# The backend that ran the queries mapped the package's library.
maps=$(dalp_psql -qAt -c "SELECT count(*) FROM dalp.tokens" -c "SELECT pg_read_file('/proc/self/maps')")
mapped=$(grep -o '/[^ ]*dalp_fdw[^ ]*\.so' <<<"$maps" | sort -u)
[[ $mapped == "$libdir/dalp_fdw.so" ]] || dalp_die "the backend mapped '$mapped', not $libdir/dalp_fdw.so"
[[ $(dpkg -S "$mapped" | cut -d: -f1) == "$pkg" ]] || dalp_die "$mapped does not belong to $pkg"
dalp_log "read $ntokens tokens and $fdw_events events of $token through $mapped"

dalp_stop_all # the cluster and the simulator, before the package goes

# --- 4. purge ----------------------------------------------------------------
dalp_log "purging $pkg"
out=$(apt_get purge -y "$pkg" 2>&1) || { echo "$out" >&2; dalp_die "apt-get purge $pkg failed (output above)"; }
installed_here=
[[ -z $(pkg_status) ]] || dalp_die "dpkg still knows $pkg after the purge ($(pkg_status))"
left=$(while IFS= read -r p; do
  if [[ -e $p ]] && ! grep -qxF -- "$p" <<<"$existing"; then echo "$p"; fi
done <<<"$pkg_paths")
[[ -z $left ]] || dalp_die "the purge left: $left"
! compgen -G "/var/lib/dpkg/info/$pkg.*" >/dev/null || dalp_die "dpkg's info files of $pkg remain"
[[ -z $(find "$libdir" "$extdir" -maxdepth 1 -name 'dalp_fdw*') ]] || dalp_die "dalp_fdw files remain after the purge"

echo "ok: ${deb##*/} built, lintian clean, $(wc -l <<<"$files") files; installed, extension $version read $ntokens tokens and $fdw_events events from the simulator; purged, nothing left"
