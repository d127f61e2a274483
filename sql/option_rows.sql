-- Every option is one row of src/options.c, listed by
-- dalp_fdw.catalog_options(); a server without an option gets the row's
-- default; an address is checked by one rule wherever it is given.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset

SELECT * FROM dalp_fdw.catalog_options();

-- server sim has base_url only: its requests ask for page_size's default
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT sum(length(account)) > 0 AS read FROM dalp.holders WHERE token_address = :'acb';
SELECT l->'query'->>'page[limit]' AS page_limit, count(*) > 0 AS requests,
       l->'query'->>'page[limit]' = (SELECT default_value FROM dalp_fdw.catalog_options()
                                      WHERE option = 'page_size') AS is_default
  FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l
 WHERE l->>'path' LIKE '%/holders'  -- its pages (its change marker asks for 1 event)
 GROUP BY 1;

-- One rule for an address: "0x" and 40 hexadecimal digits, in lowercase as
-- DALP writes them (a transaction hash: 64).  A token_address option and a
-- function argument are lowercased first; a value in a WHERE clause is
-- compared as given ("=" on text minds case): one that breaks the rule
-- matches nothing, without a request, on the token column and on the other
-- address and hash columns alike.  (table_option, function_arg: 'ok' or
-- the SQLSTATE of the error.)
CREATE FUNCTION pg_temp.address_rule(addr text, OUT table_option text,
    OUT function_arg text, OUT token_rows bigint, OUT token_requests int,
    OUT sender_requests int, OUT hash_requests int)
LANGUAGE plpgsql AS $$
BEGIN
  table_option := left(pg_temp.sqlstate_of(format(
    'CREATE FOREIGN TABLE ft_addr (account text) SERVER sim OPTIONS (resource %L, token_address %L)',
    'holders', addr)), 5);
  IF table_option = 'ok' THEN
    DROP FOREIGN TABLE ft_addr;
  END IF;
  function_arg := left(pg_temp.sqlstate_of(format('SELECT dalp_fdw.token_address_arg(%L)', addr)), 5);
  PERFORM pg_temp.sim('clear');
  EXECUTE 'SELECT count(*) FROM dalp.holders WHERE token_address = $1' INTO token_rows USING addr;
  token_requests := pg_temp.sim_requests();
  PERFORM pg_temp.sim('clear');
  EXECUTE 'SELECT count(*) FROM dalp.events WHERE token_address = $1 AND sender = $2'
    USING current_setting('dalp.acb'), addr;
  sender_requests := pg_temp.sim_requests();
  PERFORM pg_temp.sim('clear');
  EXECUTE 'SELECT count(*) FROM dalp.events WHERE token_address = $1 AND transaction_hash = $2'
    USING current_setting('dalp.acb'), addr;
  hash_requests := pg_temp.sim_requests();
END $$;
SELECT set_config('dalp.acb', :'acb', false) IS NOT NULL AS ok;
SELECT label, r.*
  FROM (VALUES ('a token', :'acb'),
               ('in capitals', '0X' || upper(substr(:'acb', 3))),
               ('39 digits', substr(:'acb', 1, 41)),
               ('41 digits', :'acb' || '0'),
               ('not hex', '0x' || repeat('g', 40)),
               ('no 0x', substr(:'acb', 3) || '00'),
               ('a hash', '0x' || repeat('ab', 32))) a(label, addr),
       pg_temp.address_rule(a.addr) r;

-- The NOTICE names the rule a token address breaks: its case (compare with
-- lower(...)), or its form, which no lowercasing mends; a list breaking
-- both says both.
SELECT count(*) FROM dalp.holders WHERE token_address = substr(:'acb', 1, 41);
SELECT count(*) FROM dalp.holders
 WHERE token_address IN (upper(:'acb'), '0x' || repeat('g', 40));

-- The NOTICE is told once per scan: not again for the planner's estimate
-- (use_remote_estimate), nor for each outer row a scan is run again for.
BEGIN;
ALTER FOREIGN TABLE dalp.holders OPTIONS (ADD use_remote_estimate 'true');
SELECT count(*) FROM dalp.holders WHERE token_address = upper(:'acb');
ROLLBACK;
SELECT g, (SELECT count(*) FROM dalp.holders
            WHERE token_address = upper(:'acb') || repeat('', g)) AS n
  FROM generate_series(1, 3) g;
