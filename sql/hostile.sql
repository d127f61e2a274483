-- What a server sends is untrusted: its text reaches a message capped at
-- about 300 bytes and with its control characters escaped, so it can
-- neither forge log lines nor write megabytes per error; its counts are
-- range-checked, and refused with a clean error when negative or absurd.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
\set VERBOSITY default

-- Sets the simulator's faults from any JSON (pg_temp.sim_faults passes its
-- argument through a shell, which would mangle backslashes).
CREATE FUNCTION pg_temp.sim_faults_json(conf json) RETURNS void
LANGUAGE sql AS $$
  SELECT count(*) FROM pg_temp.sim('faults ''' || replace(conf::text, '''', '''\''''') || '''')
$$;

CREATE SERVER once FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url', max_retries '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER once OPTIONS (api_key :'dalp_key');
CREATE FOREIGN TABLE once_factories (name text) SERVER once OPTIONS (resource 'factories');

-- error.message with line breaks that would start a log line of its own,
-- and 40,000 bytes more
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('500', 1),
  'error_message', E'Internal error.\r\n2026-05-01 12:00:00.000 UTC [42] LOG:  forged\n' || repeat('x', 40000)));
SELECT * FROM once_factories;
SELECT length(pg_temp.sqlstate_of('SELECT * FROM once_factories')) < 600 AS capped;
SELECT pg_temp.sim_faults('{}');

-- a value quoted in an error's context: escaped and capped too
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('patch', 1), 'path_prefix', '/api/v2/tokens',
  'patch', json_build_object('pausable',
    json_build_object('paused', E'no\r\nLOG:  forged ' || repeat('y', 2000))::text)));
SELECT paused FROM dalp.tokens WHERE address = :'acb';
-- ... and in the message of the type's input function, which quotes it
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('patch', 1), 'path_prefix', '/api/v2/tokens',
  'patch', json_build_object('decimals', to_json(E'18\r\nLOG:  forged ' || repeat('z', 2000))::text)));
SELECT decimals FROM dalp.tokens WHERE address = :'acb';
SELECT pg_temp.sim_faults('{}');

-- meta.total: a whole number from 0 to 2^53 (a string holding one too);
-- null is no total (the items are counted by paging); anything else is an
-- error naming the field
CREATE FUNCTION pg_temp.count_with_total(raw text, tok text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM pg_temp.sim_faults_json(json_build_object(
    'every', json_build_object('patch_meta', 1), 'patch_meta', json_build_object('total', raw)));
  SELECT count(*) INTO n FROM dalp.events WHERE token_address = tok;
  RETURN n::text;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT count(*) AS events FROM dalp.events WHERE token_address = :'acb' \gset
SELECT t.raw AS "meta.total", replace(pg_temp.count_with_total(t.raw, :'acb'), :'acb', '<acb>') AS count
  FROM (VALUES ('-1'), ('9007199254740993'), ('184467440737095516160'), ('1.5e3'), ('true'), ('{}'),
               ('9007199254740992'), ('"12"'), ('null')) AS t(raw);
SELECT :events AS counted_by_paging;

-- counts that add up past what int8 holds: an error, not a wrapped sum
-- (1,100 searches, each answered with a total of 2^53)
SELECT array_agg('0x' || lpad(to_hex(g), 40, '0')) AS accounts FROM generate_series(1, 1100) g \gset
SELECT pg_temp.sim_faults('{"every": {"patch_meta": 1}, "patch_meta": {"total": "9007199254740992"}}');
SELECT count(*) FROM dalp.events
 WHERE token_address = :'acb' AND involves_address = ANY (:'accounts'::text[]);

-- facet counts: checked alike; above 2^31 kept whole; a value listed
-- twice is one group
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('patch_meta', 1),
  'patch_meta', json_build_object('facets',
    '{"eventName": [{"value": "TransferCompleted", "count": -3}]}')));
SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name;
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('patch_meta', 1),
  'patch_meta', json_build_object('facets',
    '{"eventName": [{"value": "TransferCompleted", "count": "a lot"}]}')));
SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name;
SELECT pg_temp.sim_faults_json(json_build_object(
  'every', json_build_object('patch_meta', 1),
  'patch_meta', json_build_object('facets',
    '{"eventName": [{"value": "TransferCompleted", "count": 3000000000},
                    {"value": "MintCompleted", "count": 2}, {"value": "MintCompleted", "count": 3}]}')));
SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name
 ORDER BY event_name;
SELECT pg_temp.sim_faults('{}');

DROP SERVER once CASCADE;
