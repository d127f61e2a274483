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

-- The resource catalog the wrapper plans, decodes and imports by: what each
-- foreign table reads, and what of it the API can filter, sort and count.
-- README.md's table list is generated from these (test/readme_tables.py).
CREATE FUNCTION catalog_resources(
    OUT resource text,          -- the "resource" option and the imported table's name
    OUT api_path text,          -- collection (or single resource) path; {token} per token
    OUT per_token bool,         -- read per token: token_address pins it, else every token
    OUT collection bool,        -- paged collection (false: one single resource)
    OUT rows_field text,        -- single resource: the array field holding the rows
    OUT item_path text,         -- single-item path an "=" on item_key reads instead
    OUT item_key text,          -- the column whose "=" selects item_path ({key})
    OUT scan_sort text,         -- sort sent on an unordered full scan
    OUT sort_ties text[])       -- columns the API breaks sort ties by, in order
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_resources'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION catalog_columns(
    OUT resource text,
    OUT ordinal int,            -- position in the imported table
    OUT column_name text,
    OUT type regtype,
    OUT source text,            -- path, token, raw, named_values or search
    OUT json_path text,         -- dotted path in the item; '|' separates alternatives
    OUT filter_field text,      -- API filter field, or NULL
    OUT filter_ops text[],      -- API operators sent for it (eq, ne, gt, ..., inArray)
    OUT sort_field text,        -- API sort field, or NULL
    OUT facet bool)             -- meta.facets counts it (count(*) GROUP BY)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_columns'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- ---------------------------------------------------------------------------
-- Indexer health, record-date snapshots and the event mirror (issue 4)
-- ---------------------------------------------------------------------------
