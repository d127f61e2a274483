-- ---------------------------------------------------------------------------
-- extension/stats.sql: request counters, the activity view, and how the
-- ledger functions report their phase and quote a server's text
-- ---------------------------------------------------------------------------

-- Request counters per server: this session's (cluster => false), or with
-- dalp_fdw in shared_preload_libraries those of every backend of the cluster
-- since server start or stats_reset(true). "budget" says whether request
-- budgets are shared by the cluster or kept per backend.
CREATE FUNCTION stats(
    cluster boolean DEFAULT false,
    OUT server name,
    OUT requests bigint,
    OUT pages bigint,
    OUT rows bigint,
    OUT bytes bigint,
    OUT retries bigint,
    OUT rate_limit_waits bigint,    -- requests that waited for the budget
    OUT errors bigint,
    OUT connections_opened bigint,
    OUT network_wait_ms double precision,
    OUT responses_429 bigint,
    OUT retry_after_waits bigint,   -- requests held by another request's 429
    OUT budget_wait_ms double precision,   -- waiting for the budget or a 429
    OUT database name,
    OUT budget text,                -- 'cluster' or 'backend'
    OUT since timestamptz)          -- counting since
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_stats'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stats_reset(cluster boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_stats_reset'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION stats_reset(boolean) FROM PUBLIC;

-- One row per backend using the API (a foreign scan open, sync_events or
-- take_snapshot running), read from shared memory: needs dalp_fdw in
-- shared_preload_libraries. Like pg_stat_activity, rows of other roles'
-- sessions show pid, datname and usename only, unless the reader has the
-- privileges of pg_read_all_stats.
CREATE FUNCTION activity_rows(
    OUT pid int,
    OUT datname name,
    OUT usename name,
    OUT server name,
    OUT command text,           -- scan, count, estimate, sync_events, take_snapshot
    OUT phase text,             -- health check, backfill, replay, reconcile
    OUT path text,              -- the current request, decoded (never the key)
    OUT pages_done bigint,
    OUT pages_expected bigint,  -- from meta.total
    OUT rows bigint,
    OUT retries bigint,
    OUT wait text,              -- network, backoff, rate_limit, retry_after
    OUT wait_since timestamptz,
    OUT started timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_activity_rows'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW activity AS SELECT * FROM activity_rows();
GRANT SELECT ON activity TO PUBLIC;
COMMENT ON VIEW activity IS
    'dalp_fdw: one row per backend using the DALP API: what it does, its current request, pages, rows and wait';

-- What sync_events and take_snapshot are doing, for the activity view; only
-- they call it (as the extension's owner).
CREATE FUNCTION set_phase(command text, phase text)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_set_phase'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION set_phase(text, text) FROM PUBLIC;

-- Text a DALP server sent, as a message may show it: control characters
-- escaped, cut after about 300 bytes (what the wrapper's own messages do).
CREATE FUNCTION display_text(text)
RETURNS text
AS 'MODULE_PATHNAME', 'dalp_fdw_display_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

