# dalp_fdw: PGXS build. Honours PG_CONFIG (make PG_CONFIG=/path/to/pg_config).
MODULE_big = dalp_fdw
OBJS = \
	src/activity.o \
	src/catalog.o \
	src/counts.o \
	src/dalp_fdw.o \
	src/decode.o \
	src/deparse.o \
	src/http.o \
	src/import.o \
	src/json.o \
	src/ledger.o \
	src/options.o \
	src/pages.o \
	src/plan.o \
	src/scan.o \
	src/shmem.o \
	src/stats.o \
	src/untrusted.o

EXTENSION = dalp_fdw
# The install script is built from its parts, one concern a file, in the
# order they run (README, "Install into your own PostgreSQL").
SCRIPT_PARTS = \
	extension/dalp_fdw.sql \
	extension/stats.sql \
	extension/catalog.sql \
	extension/ledger_store.sql \
	extension/ledger_access.sql \
	extension/ledger.sql \
	extension/ledger_audit.sql
DATA_built = dalp_fdw--1.0.sql

# The pg_regress suites: sql/NAME.sql, expected/NAME.out. A new suite goes on
# a line of its own (test/run_all.sh fails if a sql/*.sql is missing here).
# They need the simulator and its environment: test/env.sh make installcheck
# (README, "make installcheck").
REGRESS = \
	activity \
	consistency \
	errors \
	facets \
	fanout \
	handmade \
	hostile \
	import \
	joins \
	json_exact \
	json_path \
	ledger_security \
	mirror \
	option_rows \
	options \
	pagination \
	pushdown \
	requests \
	resources \
	snapshot \
	tables
REGRESS_OPTS = --inputdir=.

PG_CPPFLAGS = -std=gnu99 $(shell pkg-config --cflags libcurl json-c)
SHLIB_LINK = $(shell pkg-config --libs libcurl json-c)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header: every object (and its bitcode, for the JIT) is rebuilt
# when the project's header changes, since one built against an old struct
# layout crashes the backend. List any new header here.
$(OBJS) $(OBJS:.o=.bc): src/dalp_fdw.h

$(DATA_built): $(SCRIPT_PARTS)
	cat $^ > $@
