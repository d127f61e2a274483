-- API errors become PostgreSQL errors with the HTTP status, the API's
-- message, the request path and a fitting SQLSTATE; never the key.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
\set VERBOSITY default

-- 401: a wrong key
CREATE SERVER wrong_key FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER wrong_key OPTIONS (api_key 'sm_dalp_not_the_right_key');
CREATE FOREIGN TABLE wrong_key_tokens (address text) SERVER wrong_key OPTIONS (resource 'tokens');
SELECT * FROM wrong_key_tokens;
SELECT pg_temp.sqlstate_of('SELECT * FROM wrong_key_tokens') LIKE '28000:%' AS invalid_authorization;
DROP SERVER wrong_key CASCADE;

-- 404: an unknown token, named in the path
SELECT * FROM dalp.events WHERE token_address = '0x0000000000000000000000000000000000000001';
SELECT pg_temp.sqlstate_of($$SELECT * FROM dalp.holders WHERE token_address = '0x0000000000000000000000000000000000000001'$$) LIKE 'P0002:%' AS no_data_found;
-- an unknown token looked up by address is simply no row
SELECT count(*) FROM dalp.tokens WHERE address = '0x0000000000000000000000000000000000000001';

-- statuses injected by the simulator; no retries on this server
CREATE SERVER once FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url', max_retries '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER once OPTIONS (api_key :'dalp_key');
CREATE FOREIGN TABLE once_factories (name text) SERVER once OPTIONS (resource 'factories');
SELECT pg_temp.sim_faults('{"every": {"400": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"403": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sqlstate_of('SELECT * FROM once_factories') LIKE '42501:%' AS insufficient_privilege;
SELECT pg_temp.sim_faults('{"every": {"422": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"429": 1}, "retry_after": 0}');
SELECT * FROM once_factories;
SELECT pg_temp.sqlstate_of('SELECT * FROM once_factories') LIKE '53400:%' AS limit_exceeded;
SELECT pg_temp.sim_faults('{"every": {"500": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"502": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"503": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sqlstate_of('SELECT * FROM once_factories') LIKE '08006:%' OR
       pg_temp.sqlstate_of('SELECT * FROM once_factories') LIKE 'HV00N:%' AS connection_failure;
SELECT pg_temp.sim_faults('{"every": {"504": 1}}');
SELECT * FROM once_factories;

-- when retries run out the error says how many attempts were made
ALTER SERVER once OPTIONS (SET max_retries '2', ADD retry_base_ms '1');
SELECT pg_temp.sim_faults('{"every": {"503": 1}}');
SELECT * FROM once_factories;
ALTER SERVER once OPTIONS (SET max_retries '0');

-- answers that are not what the contract promises
SELECT pg_temp.sim_faults('{"every": {"malformed": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"html": 1}}');
SELECT * FROM once_factories;
SELECT pg_temp.sim_faults('{"every": {"wrongshape": 1}}');
SELECT * FROM once_factories;

-- with the faults gone the same session reads normally
SELECT pg_temp.sim_faults('{}');
SELECT count(*) > 0 AS reads_again FROM once_factories;

-- the retries of the default server absorb a transient 503 (every second
-- request fails: the second query's first attempt)
SELECT count(*) AS nfactories FROM dalp.factories \gset
SELECT pg_temp.sim_faults('{"every": {"503": 2}}');
SELECT count(*) = :nfactories AS same_rows FROM dalp.factories;
SELECT count(*) = :nfactories AS same_rows FROM dalp.factories;
SELECT pg_temp.sim_faults('{}');
DROP SERVER once CASCADE;
