/* dalp_fdw--1.0.sql: SettleMint DALP REST API as foreign tables */

\echo Use "CREATE EXTENSION dalp_fdw" to load this file. \quit

CREATE FUNCTION dalp_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'dalp_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION dalp_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER dalp_fdw
  HANDLER dalp_fdw_handler
  VALIDATOR dalp_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER dalp_fdw IS 'SettleMint DALP REST API';

-- Per-backend counters, one row per server this session used.
CREATE FUNCTION stats(
    OUT server name,
    OUT requests bigint,
    OUT pages bigint,
    OUT rows bigint,
    OUT bytes bigint,
    OUT retries bigint,
    OUT rate_limit_waits bigint,
    OUT errors bigint,
    OUT connections_opened bigint,
    OUT network_wait_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_stats'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_stats_reset'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION stats_reset() FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Catalog introspection (issue 7)
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- Indexer health, record-date snapshots and the event mirror (issue 4)
-- ---------------------------------------------------------------------------
