-- Numbers the API sends as JSON numbers rather than decimal strings keep
-- every digit: json-c clamps integers beyond 64 bits, so decode.c never
-- reads json-c's integer or double but the number's text.  A column whose
-- type cannot hold the value fails, naming it; nothing is ever clamped.
\i test/regress_setup.sql
\set VERBOSITY default
CREATE FOREIGN TABLE exact_tokens (
  symbol text,
  total_supply_exact numeric,
  as_bigint bigint OPTIONS (json_path 'totalSupplyExact'),
  as_int int OPTIONS (json_path 'totalSupplyExact'),
  as_text text OPTIONS (json_path 'totalSupplyExact'),
  as_json json OPTIONS (json_path 'totalSupplyExact'),
  raw jsonb
) SERVER sim OPTIONS (resource 'tokens');

CREATE FUNCTION pg_temp.patch_supply(number text) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_temp.sim_faults(json_build_object('every', json_build_object('patch', 1),
    'patch', json_build_object('totalSupplyExact', number))::text)
$$;

-- beyond 64 bits, both signs: exact in numeric, text, json and jsonb
SELECT pg_temp.patch_supply('123456789012345678901234567890');
SELECT total_supply_exact, as_text, as_json,
       raw->'totalSupplyExact' AS in_raw,
       (raw->>'totalSupplyExact')::numeric = total_supply_exact AS raw_exact
  FROM exact_tokens WHERE symbol = 'ACB30';
SELECT pg_temp.patch_supply('-99999999999999999999');
SELECT total_supply_exact, as_text, raw->'totalSupplyExact' AS in_raw
  FROM exact_tokens WHERE symbol = 'ACB30';
-- the 64-bit bounds and one past them
SELECT pg_temp.patch_supply('9223372036854775807');
SELECT as_bigint, as_text FROM exact_tokens WHERE symbol = 'ACB30';
SELECT pg_temp.patch_supply('-9223372036854775808');
SELECT as_bigint, as_text FROM exact_tokens WHERE symbol = 'ACB30';
SELECT pg_temp.patch_supply('18446744073709551616');
SELECT total_supply_exact, as_text, raw->'totalSupplyExact' AS in_raw
  FROM exact_tokens WHERE symbol = 'ACB30';
-- too large for the column's type: an error naming the column and the value
SELECT as_bigint FROM exact_tokens WHERE symbol = 'ACB30';
SELECT as_int FROM exact_tokens WHERE symbol = 'ACB30';
SELECT pg_temp.patch_supply('9223372036854775808');
SELECT as_bigint FROM exact_tokens WHERE symbol = 'ACB30';
-- fractions and exponents keep their text too
SELECT pg_temp.patch_supply('1.000000000000000000000000000001e40');
SELECT total_supply_exact, as_text, raw->'totalSupplyExact' AS in_raw
  FROM exact_tokens WHERE symbol = 'ACB30';
SELECT pg_temp.patch_supply('1e400');
SELECT total_supply_exact = 1e400 AS exact, as_text FROM exact_tokens WHERE symbol = 'ACB30';

-- inside event values: the amount column, "values" jsonb, a json_path
SELECT pg_temp.sim_faults('{}');
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
CREATE FOREIGN TABLE exact_events (
  amount numeric,
  "values" jsonb,
  amount_path numeric OPTIONS (json_path 'values.amount'),
  amount_bigint bigint OPTIONS (json_path 'values.amount')
) SERVER sim OPTIONS (resource 'events', token_address :'acb');
SELECT pg_temp.sim_faults(json_build_object('every', json_build_object('patch', 1),
  'patch', json_build_object('values',
    '[{"id": "x-to", "name": "to", "value": "0x00"}, {"id": "x-amount", "name": "amount", "value": 340282366920938463463374607431768211455}]'))::text);
SELECT amount, "values"->'amount' AS in_values, amount_path,
       "values"->>'amount' = amount::text AS same_text
  FROM exact_events LIMIT 1;
SELECT amount_bigint FROM exact_events LIMIT 1;
SELECT pg_temp.sim_faults('{}');

-- A hostile server's numbers (too many digits, an exponent no type holds)
-- in columns of any declared type, through a json_path, raw jsonb and event
-- "values": a value or a clean error naming the column, its type and the
-- value; never a crash or a clamped number.
CREATE DOMAIN exact_positive AS int2 CHECK (VALUE > 0);
CREATE FOREIGN TABLE odd_tokens (
  symbol text,
  as_text text OPTIONS (json_path 'totalSupplyExact'),
  as_int2 int2 OPTIONS (json_path 'totalSupplyExact'),
  as_money numeric(5,2) OPTIONS (json_path 'totalSupplyExact'),
  as_float float8 OPTIONS (json_path 'totalSupplyExact'),
  as_positive exact_positive OPTIONS (json_path 'totalSupplyExact'),
  as_int2s int2[] OPTIONS (json_path 'totalSupplyExact'),
  as_bool bool OPTIONS (json_path 'totalSupplyExact'),
  as_json json OPTIONS (json_path 'totalSupplyExact'),
  raw jsonb
) SERVER sim OPTIONS (resource 'tokens');
-- each column of a table read alone: its text, or the error and its context
CREATE FUNCTION pg_temp.read_each(tbl text, cond text) RETURNS TABLE (col name, result text)
LANGUAGE plpgsql AS $$
DECLARE
  r text;
  msg text;
  ctx text;
BEGIN
  FOR col IN SELECT attname FROM pg_attribute
              WHERE attrelid = tbl::regclass AND attnum > 0 ORDER BY attnum LOOP
    BEGIN
      EXECUTE format('SELECT %I::text FROM %s WHERE %s', col, tbl, cond) INTO r;
      result := 'row: ' || coalesce(r, 'NULL');
    EXCEPTION WHEN others THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
      result := msg || ' (' || split_part(split_part(ctx, E'\n', 1), ' in the response', 1) || ')';
    END;
    RETURN NEXT;
  END LOOP;
END $$;
SELECT pg_temp.patch_supply('-12345678901234567890');
SELECT * FROM pg_temp.read_each('odd_tokens', $$symbol = 'ACB30'$$);
SELECT pg_temp.patch_supply('1e999999');
SELECT * FROM pg_temp.read_each('odd_tokens', $$symbol = 'ACB30'$$);
SELECT pg_temp.patch_supply('[-12345678901234567890, 1E-999999, 7]');
SELECT * FROM pg_temp.read_each('odd_tokens', $$symbol = 'ACB30'$$);
-- \u0000, which no text holds (json keeps it escaped)
SELECT pg_temp.patch_supply('"a\u0000b"');
SELECT * FROM pg_temp.read_each('odd_tokens', $$symbol = 'ACB30'$$);
SELECT pg_temp.sim_faults(json_build_object('every', json_build_object('patch', 1),
  'patch', json_build_object('values',
    '[{"id": "x-amount", "name": "amount", "value": -1e999999}]'))::text);
SELECT * FROM pg_temp.read_each('exact_events', 'true LIMIT 1');
SELECT pg_temp.sim_faults('{}');
DROP FOREIGN TABLE odd_tokens;
DROP DOMAIN exact_positive;
