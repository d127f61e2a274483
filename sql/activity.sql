-- dalp_fdw.activity, dalp_fdw.set_phase and the cluster-wide
-- dalp_fdw.stats(true), as one session sees them (the test cluster preloads
-- dalp_fdw; test/t_activity.sh reads them from other sessions).
\i test/regress_setup.sql

-- no row while the session does not use the API
SELECT count(*) FROM dalp_fdw.activity WHERE pid = pg_backend_pid();

-- its own row, read in the middle of a scan, and gone after it
SELECT a.command, a.phase, a.server, a.path, a.pages_done, a.pages_expected, a.rows, a.retries, a.wait
  FROM (SELECT * FROM dalp.factories LIMIT 1) f,
       LATERAL (SELECT * FROM dalp_fdw.activity WHERE pid = pg_backend_pid()) a;
SELECT count(*) FROM dalp_fdw.activity WHERE pid = pg_backend_pid();

-- phases: the outermost command owns the row; NULL ends it
CREATE FUNCTION pg_temp.my_row() RETURNS TABLE (command text, phase text)
LANGUAGE sql AS $$ SELECT command, phase FROM dalp_fdw.activity WHERE pid = pg_backend_pid() $$;
BEGIN;
SELECT dalp_fdw.set_phase('take_snapshot', 'health check');
SELECT * FROM pg_temp.my_row();
SELECT dalp_fdw.set_phase('sync_events', 'backfill');
SELECT * FROM pg_temp.my_row();
SELECT dalp_fdw.set_phase('take_snapshot', 'replay');
SELECT * FROM pg_temp.my_row();
SELECT dalp_fdw.set_phase('sync_events', NULL);
SELECT * FROM pg_temp.my_row();
SELECT dalp_fdw.set_phase('take_snapshot', NULL);
SELECT count(*) FROM pg_temp.my_row();
-- an error caught by an exception block ends the command it came out of
SAVEPOINT s;
SELECT dalp_fdw.set_phase('sync_events', 'backfill');
SELECT 1 / 0;
ROLLBACK TO s;
SELECT count(*) FROM pg_temp.my_row();
-- the end of the transaction ends any command
SELECT dalp_fdw.set_phase('sync_events', 'backfill');
COMMIT;
SELECT count(*) FROM pg_temp.my_row();

SELECT pg_temp.sqlstate_of($$SELECT dalp_fdw.set_phase('snapshot', 'backfill')$$);
SELECT pg_temp.sqlstate_of($$SELECT dalp_fdw.set_phase('take_snapshot', 'resync')$$);
SELECT pg_temp.sqlstate_of($$SELECT dalp_fdw.set_phase(NULL, 'backfill')$$);

-- cluster-wide counters next to the session's; 429s counted apart
SELECT dalp_fdw.stats_reset(true);
SELECT dalp_fdw.stats_reset();
SELECT pg_temp.sim_faults('{"every": {"429": 2}, "retry_after": 0}');
SELECT count(*) > 0 AS read FROM dalp.factories;
SELECT count(*) > 0 AS read FROM dalp.factories;
SELECT pg_temp.sim_faults('{}');
SELECT server, requests, pages, retries, responses_429, errors, database = current_database() AS here, budget
  FROM dalp_fdw.stats();
SELECT server, requests, pages, retries, responses_429, errors, database = current_database() AS here, budget,
       since > now() - interval '1 minute' AS since_reset
  FROM dalp_fdw.stats(true) WHERE server = 'sim';
SELECT dalp_fdw.stats_reset(true);
SELECT requests FROM dalp_fdw.stats(true) WHERE server = 'sim';
SELECT requests FROM dalp_fdw.stats() WHERE server = 'sim';
