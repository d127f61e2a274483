-- Shared set-up of the pg_regress suites (read with \i from the repo root):
-- the extension, a server on the simulator with a user mapping, the
-- imported schema "dalp", and helpers to drive the simulator from SQL.
\set ECHO none
\set QUIET on
\getenv dalp_url DALP_SIM_URL
\getenv dalp_key DALP_API_KEY
\getenv dalp_simctl DALP_SIMCTL
SELECT :{?dalp_url} AND :{?dalp_key} AND :{?dalp_simctl} AS dalp_env_set \gset
\if :dalp_env_set
\else
\set ON_ERROR_STOP on
DO $$ BEGIN RAISE EXCEPTION 'DALP_SIM_URL, DALP_API_KEY or DALP_SIMCTL is not set'
  USING HINT = 'Run the suites as test/env.sh make installcheck (README, "make installcheck").'; END $$;
\endif
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dalp CASCADE;
DROP SERVER IF EXISTS sim CASCADE;
CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE SERVER sim FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER sim OPTIONS (api_key :'dalp_key');
CREATE SCHEMA dalp;
IMPORT FOREIGN SCHEMA v2 FROM SERVER sim INTO dalp;

-- sim('faults ''{...}''') runs test/simctl.py against the simulator and
-- returns its output, one row per line. The server's OS user runs it, so it
-- runs the copy test/lib.sh put where that user can read it (DALP_SIMCTL).
CREATE TEMP TABLE sim_out (line text);
CREATE OR REPLACE FUNCTION pg_temp.sim(args text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE sim_out;
  EXECUTE format('COPY sim_out FROM PROGRAM %L WITH (FORMAT csv, DELIMITER E''\x01'', QUOTE E''\x02'')',
                 format('/usr/bin/python3 %s --url %s %s',
                        current_setting('dalp.simctl'), current_setting('dalp.url'), args));
  RETURN QUERY SELECT line FROM sim_out;
END $$;
SELECT set_config('dalp.simctl', :'dalp_simctl', false) IS NOT NULL AS ok \gset
SELECT set_config('dalp.url', :'dalp_url', false) IS NOT NULL AS ok \gset

-- The SQLSTATE and message a statement fails with, or 'ok'.
CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Set the simulator's faults ('{}' clears them).  The JSON is quoted for
-- the shell, which takes backslashes in single quotes as they are.
CREATE OR REPLACE FUNCTION pg_temp.sim_faults(conf text) RETURNS void
LANGUAGE sql AS $$
  SELECT count(*) FROM pg_temp.sim('faults ''' || replace(conf, '''', '''"''"''') || '''')
$$;

-- Number of API requests the simulator logged since the last clear.
CREATE OR REPLACE FUNCTION pg_temp.sim_requests() RETURNS int
LANGUAGE sql AS $$ SELECT pg_temp.sim('log --count')::int $$;

-- rows of a query with pushdown on, compared as a multiset with pushdown
-- off: "N rows, same" or "N rows, DIFFERENT"
CREATE OR REPLACE FUNCTION pg_temp.same_rows(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE on_rows bigint; off_rows bigint; diff bigint;
BEGIN
  EXECUTE format('CREATE TEMP TABLE r_on AS %s', q);
  PERFORM set_config('dalp_fdw.pushdown', 'off', true);
  EXECUTE format('CREATE TEMP TABLE r_off AS %s', q);
  PERFORM set_config('dalp_fdw.pushdown', 'on', true);
  SELECT count(*) INTO on_rows FROM r_on;
  SELECT count(*) INTO off_rows FROM r_off;
  SELECT count(*) INTO diff FROM ((TABLE r_on EXCEPT ALL TABLE r_off) UNION ALL (TABLE r_off EXCEPT ALL TABLE r_on)) d;
  DROP TABLE r_on, r_off;
  RETURN format('%s rows, %s', on_rows, CASE WHEN diff = 0 AND on_rows = off_rows THEN 'same' ELSE 'DIFFERENT' END);
END $$;

RESET client_min_messages;
\set QUIET off
\set ECHO all
