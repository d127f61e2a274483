#!/usr/bin/env bash
# test/env.sh: one command in the environment the tests run in.
# Installs what is missing, builds and installs the extension, starts a
# throwaway PostgreSQL 15 cluster and the simulator on loopback (test/lib.sh),
# runs CMD with the variables they read (PGHOST PGPORT PGUSER PGDATABASE
# DALP_SIM_URL DALP_API_KEY DALP_SIMCTL ...), then stops them. Exits with
# CMD's status.
#
#   test/env.sh make installcheck                         every pg_regress suite
#   test/env.sh make installcheck REGRESS="snapshot mirror"
#   test/env.sh bash test/t_load.sh
#
# Environment: that of test/lib.sh (DALP_PGPORT, DALP_SIM_PORT, DALP_API_KEY).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($#)) || { echo "usage: $0 CMD [ARG...]   e.g. $0 make installcheck" >&2; exit 2; }
cd "$DALP_REPO"
dalp_setup
rc=0
"$@" || rc=$?
exit "$rc"
