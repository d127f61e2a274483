# shellcheck shell=bash
# test/lib.sh: the set-up shared by test/demo.sh, test/run_all.sh and the
# test scripts test/t_*.sh. Source it; it runs nothing by itself.
#
#   dalp_setup           all of the four below, as run_all.sh, demo.sh, env.sh do
#   dalp_install_deps    apt-get install what is missing (Debian 12, as root)
#   dalp_build_install   make && make install against PostgreSQL 15
#   dalp_start_cluster   throwaway PostgreSQL 15 cluster on 127.0.0.1:$DALP_PGPORT
#   dalp_start_sim [--port N] [sim args...]
#                        test/dalp_sim.py on 127.0.0.1 (default $DALP_SIM_PORT,
#                        which also exports DALP_SIM_URL); extra args go to the
#                        sim; DALP_SIM_LAST_URL is the URL of the one just started
#   dalp_stop_sim [PORT] stop one simulator (default: the main one)
#   dalp_own_sim OFFSET [sim args...]  a simulator of the script's own, on
#                        port DALP_SIM_PORT + OFFSET: sets port and url, and
#                        simctl ARGS... runs test/simctl.py against it
#   dalp_stop_all        stop all that this process started, remove its temp dir
#   dalp_atexit CMD [ARG...]  run CMD in dalp_stop_all (a script's own clean-up)
#   dalp_init_tmpdir     make DALP_TMPDIR now, in a script that starts nothing
#                        (the first start makes it otherwise)
#   dalp_psql ARGS...    psql 15, no psqlrc, stop on the first error
#   dalp_own_database DB  a database of the script's own: created, made
#                        PGDATABASE, dalp_fdw installed; dropped at exit
#   dalp_new_database DB  the same, bare: neither PGDATABASE nor dalp_fdw
#   dalp_own_role ROLE   a LOGIN role of the script's own, dropped at exit
#                        (after the databases made before it)
#   dalp_sim_server SERVER URL [OPTIONS]  in PGDATABASE: a dalp_fdw server
#                        at URL (OPTIONS: more "name 'value'" pairs) and the
#                        current user's mapping with DALP_API_KEY
#   dalp_factories_server SERVER URL [OPTIONS]  dalp_sim_server anew (dalp_fdw
#                        installed, an older SERVER dropped) and its foreign
#                        table SERVER_f (name text) of resource factories
#   dalp_sim_schema NAME URL [OPTIONS [TABLES]]  dalp_sim_server NAME anew and
#                        a schema NAME holding the foreign tables IMPORT
#                        FOREIGN SCHEMA v2 makes (TABLES: "a, b", only
#                        those); both dropped at exit
#   dalp_token TABLE SYMBOL  the address of token SYMBOL in the foreign table
#                        TABLE (a tokens table); dies when there is none
#   dalp_print_logs [N]  tail of the server log and the simulator logs
#   dalp_log / dalp_warn / dalp_die MESSAGE
#
# The first start installs `trap dalp_stop_all EXIT` (unless the script set an
# EXIT trap of its own, which must then call dalp_stop_all), so a failure or a
# Ctrl-C still stops what was started. Every process keeps its pids in its own
# /tmp/dalp_fdw.XXXXXX; a later run stops what a killed run left behind.
#
# Environment (defaults in brackets):
#   DALP_PGPORT [54329]  DALP_SIM_PORT [18765]
#   DALP_PRELOAD [pg_cron,dalp_fdw]: the cluster's shared_preload_libraries
#     (dalp_fdw preloaded shares request budgets and activity, as README
#     recommends; t_budget.sh also starts a cluster without it)
#   DALP_API_KEY [sm_dalp_test_0123456789abcdef]   DALP_SIM_TIMEOUT [60] (s)
# Exported once started: PGHOST PGPORT PGUSER PGDATABASE DALP_PGLOG
#   DALP_SIM_URL DALP_SIM_PORT DALP_API_KEY DALP_REPO DALP_PYTHON
#   DALP_SIMCTL (a copy of test/simctl.py the server's OS user can read), and
#   PATH begins with the PostgreSQL 15 bin directory.

DALP_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DALP_PGBIN=/usr/lib/postgresql/15/bin
DALP_PG_CONFIG=$DALP_PGBIN/pg_config
DALP_PGPORT=${DALP_PGPORT:-54329}
DALP_SIM_PORT=${DALP_SIM_PORT:-18765}
DALP_API_KEY=${DALP_API_KEY:-sm_dalp_test_0123456789abcdef}
DALP_SIM_TIMEOUT=${DALP_SIM_TIMEOUT:-60}
# Debian's own python3 (the one dalp_install_deps installs), not whatever a
# version manager put first in PATH, so a developer runs what CI runs.
if [[ -z ${DALP_PYTHON:-} ]]; then
  if [[ -x /usr/bin/python3 ]]; then DALP_PYTHON=/usr/bin/python3; else DALP_PYTHON=python3; fi
fi
export DALP_REPO DALP_PGPORT DALP_SIM_PORT DALP_API_KEY DALP_PYTHON
case ":$PATH:" in *":$DALP_PGBIN:"*) ;; *) export PATH="$DALP_PGBIN:$PATH" ;; esac

# Everything the scripts run beyond a minimal Debian 12 (debootstrap
# --variant=minbase: coreutils, diffutils, findutils, grep, sed, gzip, mawk,
# util-linux's runuser are there already). postgresql-15 brings psql and
# pgbench; procps: ps (t_secrets.sh); iproute2: ss (who holds a busy port);
# libjson-c-dev: bench/'s raw client.
DALP_APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev
  libjson-c-dev pkg-config make gcc python3 curl postgresql-15-cron
  postgresql-plpython3-15 procps iproute2)
# What test/pkg_test.sh needs on top: the Debian package build (debian/control's
# Build-Depends) and lintian.
# shellcheck disable=SC2034 # read by test/pkg_test.sh
DALP_PKG_APT_PACKAGES=(build-essential debhelper dpkg-dev postgresql-server-dev-all
  lintian git)

# Per-process state, never exported, so a test script that sources this file
# gets its own temp dir and stops only what it started itself. DALP_TMPDIR is
# this process's temp dir (set by the first start), for a script's own files.
DALP_TMPDIR=
export -n DALP_TMPDIR
_DALP_ATEXIT=()

dalp_log() { printf '==> %s\n' "$*" >&2; }
dalp_warn() { printf 'WARNING: %s\n' "$*" >&2; }
dalp_die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

dalp_psql() { "$DALP_PGBIN/psql" -X -v ON_ERROR_STOP=1 "$@"; }

dalp_atexit() { _DALP_ATEXIT+=("$(printf '%q ' "$@")"); }

# Runs a command as root: directly when we are root, else through sudo.
_dalp_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

# Runs a command as the cluster's owner: initdb and postgres refuse root.
_dalp_as_pg() {
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

dalp_install_deps() {
  local p missing=()
  for p in "${DALP_APT_PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    dalp_log "apt packages: all present"
    return 0
  fi
  dalp_log "apt packages: installing ${missing[*]}"
  # An unreachable extra source makes `update` fail although Debian's own
  # lists were fetched; the install below is the real test.
  _dalp_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    dalp_warn "apt-get update reported errors; trying the install anyway"
  # Lock::Timeout: wait for another apt-get or dpkg instead of failing.
  _dalp_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 "${missing[@]}" ||
    dalp_die "apt-get install ${missing[*]} failed (output above)"
}

dalp_setup() {
  dalp_install_deps
  dalp_build_install
  dalp_start_cluster
  dalp_start_sim
}

dalp_build_install() {
  dalp_log "building dalp_fdw (make PG_CONFIG=$DALP_PG_CONFIG)"
  # -s: warnings and errors only, not every compiler command line.
  make -C "$DALP_REPO" -s --no-print-directory -j"$(nproc)" PG_CONFIG="$DALP_PG_CONFIG" ||
    dalp_die "build failed: make PG_CONFIG=$DALP_PG_CONFIG (compiler output above)"
  _dalp_root make -C "$DALP_REPO" -s --no-print-directory install PG_CONFIG="$DALP_PG_CONFIG" ||
    dalp_die "make install PG_CONFIG=$DALP_PG_CONFIG failed (output above)"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
_dalp_port_busy() {
  (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Fails with a clear message when PORT is taken by a program we did not start
# (what an earlier killed run left was stopped by _dalp_reap_stale already).
_dalp_require_free_port() {
  local port=$1 what=$2 var=$3 who=
  _dalp_port_busy "$port" || return 0
  if command -v ss >/dev/null; then
    who=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)
  fi
  dalp_die "port $port on 127.0.0.1 (for $what) is in use by ${who:-another program}," \
    "not started by these scripts; stop it or choose another port: $var=NNNNN"
}

# Stops what the run that owns temp dir $1 started, then removes the dir.
# Shared by dalp_stop_all and the clean-up after a killed run.
_dalp_stop_dir() {
  local - dir=$1 f pid i # `local -`: the set +e below ends with this function
  set +e                  # clean-up goes on past a failing step
  [[ -d $dir ]] || return 0
  for f in "$dir"/sim.*.pid; do
    [[ -f $f ]] || continue
    _dalp_kill_sim "$(<"$f")"
    rm -f "$f"
  done
  if [[ -f $dir/pg/data/postmaster.pid ]]; then
    pid=$(head -n 1 "$dir/pg/data/postmaster.pid")
    dalp_log "stopping PostgreSQL (pid $pid)"
    _dalp_as_pg "$DALP_PGBIN/pg_ctl" -D "$dir/pg/data" -s -m fast -w -t 30 stop 2>/dev/null ||
      _dalp_as_pg "$DALP_PGBIN/pg_ctl" -D "$dir/pg/data" -s -m immediate -w -t 30 stop 2>/dev/null
    # A postmaster killed with SIGKILL leaves its pid file: nothing to stop.
    for ((i = 0; i < 50; i++)); do _dalp_alive "$pid" || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

# True while process PID runs; a zombie (killed, not yet reaped) is gone.
_dalp_alive() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) } # the state letter follows the command name in parentheses
  [[ ${stat:0:1} != [ZX] ]]
}

# Kills a simulator by pid, but only if that pid still runs dalp_sim.py (the
# pid may have been reused since a killed run wrote it down).
_dalp_kill_sim() {
  local - pid=$1 i
  set +e
  _dalp_alive "$pid" && grep -qs 'dalp_sim' "/proc/$pid/cmdline" || return 0
  dalp_log "stopping simulator (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do _dalp_alive "$pid" || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null # our own child: reap it quietly
  return 0
}

# Stops what earlier runs left behind when they were killed before their
# clean-up ran (their owner pid is gone): postgres, simulators, temp dirs.
_dalp_reap_stale() {
  local dir owner
  for dir in /tmp/dalp_fdw.*; do
    [[ -f $dir/owner.pid ]] || continue
    owner=$(<"$dir/owner.pid")
    if [[ $owner == "$$" ]] || _dalp_alive "$owner"; then continue; fi
    dalp_warn "an earlier run (pid $owner) did not clean up; stopping what it left in $dir"
    _dalp_stop_dir "$dir"
  done
}

# Creates this process's temp dir and the clean-up traps, once.
_dalp_tmp_init() {
  [[ -n $DALP_TMPDIR && -d $DALP_TMPDIR ]] && return 0
  _dalp_reap_stale
  DALP_TMPDIR=$(mktemp -d /tmp/dalp_fdw.XXXXXX) || dalp_die "mktemp failed"
  chmod 755 "$DALP_TMPDIR" # the postgres user must reach its data dir inside
  echo "$$" >"$DALP_TMPDIR/owner.pid"
  # Respect a script's own EXIT trap (it must call dalp_stop_all itself).
  [[ -n $(trap -p EXIT) ]] || trap dalp_stop_all EXIT
  # Turn signals into an exit, so the EXIT trap runs on Ctrl-C and kill too.
  [[ -n $(trap -p INT) ]] || trap 'exit 130' INT
  [[ -n $(trap -p TERM) ]] || trap 'exit 143' TERM
  [[ -n $(trap -p HUP) ]] || trap 'exit 129' HUP
}

# Starts the cluster. A port in the ephemeral range (ip_local_port_range)
# may be, for a while, the local end of another program's connection on a
# busy machine: nothing listens there, yet the postmaster cannot bind it.
# Such a start is tried again for a minute.
_dalp_pg_start() {
  local data=$1 log=$2 port=$3 i
  for ((i = 1; ; i++)); do
    _dalp_as_pg "$DALP_PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start && return 0
    if ((i < 30)) && ! _dalp_port_busy "$port" &&
      tail -n 20 "$log" | grep -q 'could not bind .*Address already in use'; then
      dalp_warn "port $port is the local end of a connection just now (not a listener): starting again in 2 s" \
        "$(command -v ss >/dev/null && ss -Htan "sport = :$port" | head -n 1)"
      sleep 2
      continue
    fi
    tail -n 50 "$log" >&2
    dalp_die "PostgreSQL did not start (log tail above)"
  done
}

dalp_init_tmpdir() { _dalp_tmp_init; }

dalp_own_sim() {
  # shellcheck disable=SC2034 # port and url are the calling script's
  port=$((DALP_SIM_PORT + $1))
  shift
  dalp_start_sim --port "$port" "$@"
  url=$DALP_SIM_LAST_URL
  # shellcheck disable=SC2317 # called by the script
  simctl() { "$DALP_PYTHON" "$DALP_REPO/test/simctl.py" --url "$url" "$@"; }
}

# What a test script that works in a database of its own sets up; what it
# makes is removed by dalp_stop_all, in the order it was made.
dalp_new_database() {
  _dalp_tmp_init
  dalp_psql -q -d postgres -c "CREATE DATABASE $1"
  dalp_atexit _dalp_drop database "$1 WITH (FORCE)"
}

dalp_own_database() {
  dalp_new_database "$1"
  export PGDATABASE=$1
  dalp_psql -q -c "CREATE EXTENSION dalp_fdw"
}

dalp_own_role() {
  _dalp_tmp_init
  dalp_psql -q -d postgres -c "CREATE ROLE $1 LOGIN"
  dalp_atexit _dalp_drop role "$1"
}

_dalp_drop() { dalp_psql -q -d postgres -c "DROP $1 IF EXISTS $2" >/dev/null 2>&1; }

dalp_sim_server() {
  dalp_psql -q -c "CREATE SERVER $1 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url '$2'${3:+, $3})" \
    -c "CREATE USER MAPPING FOR CURRENT_USER SERVER $1 OPTIONS (api_key '$DALP_API_KEY')"
}

# dalp_fdw installed, and server $1 (and schema $2) dropped if a rerun in
# the same database finds them
_dalp_free_server() {
  dalp_psql -q -c "SET client_min_messages = warning" \
    -c "CREATE EXTENSION IF NOT EXISTS dalp_fdw" \
    -c "DROP SERVER IF EXISTS $1 CASCADE" ${2:+-c "DROP SCHEMA IF EXISTS $2 CASCADE"}
}

dalp_factories_server() {
  _dalp_free_server "$1"
  dalp_sim_server "$@"
  dalp_psql -q -c "CREATE FOREIGN TABLE $1_f (name text) SERVER $1 OPTIONS (resource 'factories')"
}

dalp_sim_schema() {
  _dalp_free_server "$1" "$1"
  dalp_sim_server "$1" "$2" "${3:-}"
  dalp_psql -q -c "CREATE SCHEMA $1" \
    -c "IMPORT FOREIGN SCHEMA v2 ${4:+LIMIT TO ($4) }FROM SERVER $1 INTO $1"
  dalp_atexit dalp_psql -qc "SET client_min_messages = warning; DROP SERVER IF EXISTS $1 CASCADE; DROP SCHEMA IF EXISTS $1 CASCADE"
}

dalp_token() {
  local address
  address=$(dalp_psql -tAc "SELECT address FROM $1 WHERE symbol = '$2'")
  [[ -n $address ]] || dalp_die "the simulator has no $2 token"
  echo "$address"
}

dalp_start_cluster() {
  local port=$DALP_PGPORT dir data log
  [[ -x $DALP_PGBIN/initdb ]] || dalp_die "$DALP_PGBIN/initdb not found: run dalp_install_deps (postgresql-15)"
  _dalp_tmp_init
  [[ ! -d $DALP_TMPDIR/pg ]] || dalp_die "dalp_start_cluster: a cluster was already started by this process"
  _dalp_require_free_port "$port" "PostgreSQL" DALP_PGPORT
  dir=$DALP_TMPDIR/pg data=$DALP_TMPDIR/pg/data log=$DALP_TMPDIR/pg/postgres.log
  mkdir "$dir" || dalp_die "cannot create $dir"
  if ((EUID == 0)); then chown postgres: "$dir" || dalp_die "cannot chown $dir to postgres"; fi
  dalp_log "starting PostgreSQL 15 on 127.0.0.1:$port (data in $data)"
  _dalp_as_pg "$DALP_PGBIN/initdb" -D "$data" --auth=trust -U postgres \
    --locale=C.UTF-8 -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; dalp_die "initdb failed"; }
  # pg_cron must be preloaded; its jobs run in the postgres database and
  # connect over our private socket directory. dalp_fdw is preloaded as in
  # production, unless DALP_PRELOAD says otherwise.
  cat >>"$data/postgresql.conf" <<EOF

# dalp_fdw test cluster (test/lib.sh)
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = '${DALP_PRELOAD-pg_cron,dalp_fdw}'
cron.database_name = 'postgres'
cron.host = '$dir'
# throwaway cluster: speed over durability
fsync = off
EOF
  _dalp_pg_start "$data" "$log" "$port"
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres DALP_PGLOG=$log
  dalp_psql -qAt -c 'SELECT 1' >/dev/null ||
    { tail -n 50 "$log" >&2; dalp_die "PostgreSQL started but refuses connections on 127.0.0.1:$port"; }
}

# shellcheck disable=SC2120 # arguments are optional
dalp_start_sim() {
  local port=$DALP_SIM_PORT hint=DALP_SIM_PORT args=() pid log i
  while (($#)); do
    case $1 in
      --port) port=$2 hint='dalp_start_sim --port'; shift 2 ;;
      --port=*) port=${1#--port=} hint='dalp_start_sim --port'; shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  [[ -f $DALP_REPO/test/dalp_sim.py ]] || dalp_die "$DALP_REPO/test/dalp_sim.py not found"
  _dalp_tmp_init
  _dalp_require_free_port "$port" "the simulator" "$hint"
  log=$DALP_TMPDIR/sim.$port.log
  : >"$log" # exists before the background job opens it: the wait greps it
  dalp_log "starting simulator on 127.0.0.1:$port ${args[*]}"
  # -u: the ready line must reach the log file now, not at exit.
  "$DALP_PYTHON" -u "$DALP_REPO/test/dalp_sim.py" --host 127.0.0.1 --port "$port" \
    --seed 42 --api-key "$DALP_API_KEY" "${args[@]}" </dev/null >"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$DALP_TMPDIR/sim.$port.pid"
  for ((i = 0; i < DALP_SIM_TIMEOUT * 10; i++)); do
    grep -q 'dalp_sim ready on' "$log" && break
    if ! _dalp_alive "$pid"; then
      tail -n 50 "$log" >&2
      dalp_die "simulator exited before it was ready (output above)"
    fi
    sleep 0.1
  done
  grep -q 'dalp_sim ready on' "$log" ||
    { tail -n 50 "$log" >&2; dalp_die "simulator not ready after ${DALP_SIM_TIMEOUT}s (output above)"; }
  # shellcheck disable=SC2034 # for the caller: the URL of the sim just started
  DALP_SIM_LAST_URL=http://127.0.0.1:$port
  if [[ $hint == DALP_SIM_PORT ]]; then
    export DALP_SIM_URL=$DALP_SIM_LAST_URL DALP_SIM_PORT=$port
    _dalp_share_simctl
  fi
}

# The pg_regress suites drive the simulator from SQL (COPY ... FROM PROGRAM),
# so test/simctl.py runs as the server's OS user, who may not read the
# repository (a clone in a home directory of mode 0700): it runs a copy in
# this process's temp dir, which that user can read.
_dalp_share_simctl() {
  install -m 644 "$DALP_REPO/test/simctl.py" "$DALP_TMPDIR/simctl.py" ||
    dalp_die "cannot copy test/simctl.py to $DALP_TMPDIR"
  export DALP_SIMCTL=$DALP_TMPDIR/simctl.py
}

dalp_stop_sim() {
  local port=${1:-$DALP_SIM_PORT} f
  f=${DALP_TMPDIR:-/nonexistent}/sim.$port.pid
  [[ -f $f ]] || return 0
  _dalp_kill_sim "$(<"$f")"
  rm -f "$f"
}

dalp_print_logs() {
  local n=${1:-80} f
  [[ -n $DALP_TMPDIR ]] || return 0
  for f in "$DALP_TMPDIR"/pg/postgres.log "$DALP_TMPDIR"/sim.*.log; do
    [[ -s $f ]] || continue
    printf '\n----- last %s lines of %s -----\n' "$n" "$f"
    tail -n "$n" "$f"
  done
}

dalp_stop_all() {
  local - cmd # `local -`: the set +e below ends with this function
  set +e      # clean-up goes on past a failing step
  for cmd in "${_DALP_ATEXIT[@]}"; do eval "$cmd"; done
  _DALP_ATEXIT=()
  [[ -n $DALP_TMPDIR ]] && _dalp_stop_dir "$DALP_TMPDIR"
  DALP_TMPDIR=
  return 0
}
