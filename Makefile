# dalp_fdw: PGXS build. Honours PG_CONFIG (make PG_CONFIG=/path/to/pg_config).
MODULE_big = dalp_fdw
OBJS = \
	src/catalog.o \
	src/decode.o \
	src/http.o \
	src/import.o \
	src/options.o \
	src/plan.o \
	src/request.o \
	src/scan.o \
	src/stats.o

EXTENSION = dalp_fdw
DATA = sql/dalp_fdw--1.0.sql

REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/dalp_fdw--%,$(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

PG_CPPFLAGS = -std=gnu99 $(shell pkg-config --cflags libcurl)
SHLIB_LINK = $(shell pkg-config --libs libcurl)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
