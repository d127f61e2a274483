-- The column option json_path maps a column to a dotted path in the item,
-- with the column's type applied: nested objects, array elements by index,
-- event values by name, alternatives; a missing path is NULL; a value that
-- does not convert is an error naming the column, the path and the value.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
\set VERBOSITY default

-- ---------------------------------------------------------------------------
-- Nested objects and arrays
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE token_paths (
  symbol text,
  factory text OPTIONS (json_path 'tokenFactory.id'),
  factory_object jsonb OPTIONS (json_path 'tokenFactory'),
  factory_as_text text OPTIONS (json_path 'tokenFactory'),
  is_paused bool OPTIONS (json_path 'pausable.paused'),
  first_extension text OPTIONS (json_path 'extensions.0'),
  eighth_extension text OPTIONS (json_path 'extensions.7'),
  extension_list text[] OPTIONS (json_path 'extensions'),
  extensions_as_jsonb jsonb OPTIONS (json_path 'extensions'),
  decimals_numeric numeric OPTIONS (json_path 'decimals'),
  decimals_text text OPTIONS (json_path 'decimals'),
  created_on date OPTIONS (json_path 'createdAt'),
  created_text text OPTIONS (json_path 'createdAt'),
  supply_exact numeric OPTIONS (json_path 'totalSupplyExact')
) SERVER sim OPTIONS (resource 'tokens');

SELECT symbol, is_paused, first_extension, eighth_extension,
       decimals_numeric, decimals_text, created_on, created_text
  FROM token_paths ORDER BY symbol;
SELECT symbol, extension_list, jsonb_typeof(extensions_as_jsonb) AS jsonb_type,
       jsonb_typeof(factory_object) AS factory_type
  FROM token_paths WHERE symbol IN ('ACB30', 'PN26') ORDER BY symbol;
-- each path reads what the catalog's own columns read
SELECT bool_and(p.factory = t.factory_address) AS factory,
       bool_and(p.factory_object = t.raw->'tokenFactory') AS factory_object,
       bool_and(p.factory_as_text::jsonb = t.raw->'tokenFactory') AS object_as_json_text,
       bool_and(p.is_paused = t.paused) AS paused,
       bool_and(p.extension_list = t.extensions) AS extensions,
       bool_and(p.extensions_as_jsonb = t.raw->'extensions') AS extensions_jsonb,
       bool_and(p.supply_exact = t.total_supply_exact) AS supply_exact,
       bool_and(pg_typeof(p.decimals_numeric) = 'numeric'::regtype) AS numeric_type
  FROM token_paths p JOIN dalp.tokens t ON t.symbol = p.symbol;

-- parameters of compliance modules: objects, arrays of numbers, booleans
CREATE FOREIGN TABLE module_paths (
  token_address text,
  type_id text,
  countries int[] OPTIONS (json_path 'parameters.countries'),
  second_country int OPTIONS (json_path 'parameters.countries.1'),
  max_investors int OPTIONS (json_path 'parameters.maxInvestors'),
  is_global bool OPTIONS (json_path 'parameters.global'),
  first_claim text OPTIONS (json_path 'parameters.requiredClaimTopics.0'),
  max_supply numeric OPTIONS (json_path 'parameters.maxSupply'),
  expiry interval OPTIONS (json_path 'parameters.approvalExpirySeconds')
) SERVER sim OPTIONS (resource 'compliance_modules');
SELECT DISTINCT type_id, countries, second_country, max_investors, is_global,
       first_claim, max_supply, expiry
  FROM module_paths ORDER BY type_id;

-- ---------------------------------------------------------------------------
-- Event values: a name selects the {name, value} element's value
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE event_paths (
  token_address text,
  id text,
  event_name text,
  block_number bigint,
  tx_index int,
  amount numeric OPTIONS (json_path 'values.amount'),
  recipient text OPTIONS (json_path 'values.to'),
  first_value jsonb OPTIONS (json_path 'values.0'),
  first_name text OPTIONS (json_path 'values.0.name'),
  second_value text OPTIONS (json_path 'values.1.value'),
  values_array jsonb OPTIONS (json_path 'values'),
  amount_or_value numeric OPTIONS (json_path 'values.amount|values.value'),
  emitter_id text OPTIONS (json_path 'emitter.id'),
  block int OPTIONS (json_path 'blockNumber')
) SERVER sim OPTIONS (resource 'events', token_address :'acb');

-- the first event of each kind that has values named amount, to or value
WITH firsts AS (
  SELECT DISTINCT ON (event_name) *
    FROM event_paths
   WHERE event_name IN ('MintCompleted', 'TransferCompleted', 'Approval', 'RoleGranted')
   ORDER BY event_name, block_number, tx_index)
SELECT event_name, amount IS NOT NULL AS has_amount, recipient IS NOT NULL AS has_recipient,
       first_name, first_value->>'name' AS first_value_name,
       jsonb_typeof(values_array) AS values_type,
       amount_or_value IS NOT NULL AS has_amount_or_value,
       block = block_number AS block_as_int
  FROM firsts ORDER BY event_name;
-- the same values as the catalog's columns and the folded "values" object
SELECT count(*) > 0 AS has_events,
       bool_and(p.amount IS NOT DISTINCT FROM e.amount) AS amount,
       bool_and(p.recipient IS NOT DISTINCT FROM e.to_address) AS recipient,
       bool_and(p.second_value IS NOT DISTINCT FROM (p.values_array->1->>'value')) AS second_value,
       bool_and(p.amount_or_value IS NOT DISTINCT FROM
                coalesce(e."values"->>'amount', e."values"->>'value')::numeric) AS alternatives,
       bool_and(p.values_array = e.raw->'values') AS values_array,
       bool_and(p.emitter_id = e.emitter) AS emitter,
       bool_and(p.block = e.block_number) AS block
  FROM event_paths p JOIN dalp.events e ON e.id = p.id
 WHERE e.token_address = :'acb';

-- ---------------------------------------------------------------------------
-- Paths that do not exist are NULL
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE missing_paths (
  symbol text,
  no_field text OPTIONS (json_path 'noSuchField'),
  no_nested text OPTIONS (json_path 'no.such.path'),
  under_scalar text OPTIONS (json_path 'name.first'),
  under_object text OPTIONS (json_path 'tokenFactory.name'),
  past_last_index text OPTIONS (json_path 'extensions.99'),
  name_in_plain_array text OPTIONS (json_path 'extensions.BURNABLE'),
  typed_missing numeric OPTIONS (json_path 'pausable.amount'),
  jsonb_missing jsonb OPTIONS (json_path 'metadata')
) SERVER sim OPTIONS (resource 'tokens');
SELECT count(*) AS tokens, count(symbol) AS symbols,
       count(no_field) + count(no_nested) + count(under_scalar) + count(under_object) +
       count(past_last_index) + count(name_in_plain_array) + count(typed_missing) +
       count(jsonb_missing) AS non_null_values
  FROM missing_paths;
-- an event value that an event does not carry is NULL too (Paused has no amount)
SELECT event_name, count(*) AS events, count(amount) AS with_amount, count(recipient) AS with_recipient
  FROM event_paths WHERE event_name IN ('Paused', 'RoleGranted', 'MintCompleted')
 GROUP BY event_name ORDER BY event_name;

-- ---------------------------------------------------------------------------
-- json_path columns are filtered here, never by the API
-- ---------------------------------------------------------------------------
-- a column named like a catalog column but mapped elsewhere: "name" reads symbol
CREATE FOREIGN TABLE renamed (name text OPTIONS (json_path 'symbol'), symbol text OPTIONS (json_path 'name'))
  SERVER sim OPTIONS (resource 'tokens');
EXPLAIN (VERBOSE, COSTS OFF) SELECT name, symbol FROM renamed WHERE name = 'ACB30';
SELECT name, symbol FROM renamed WHERE name = 'ACB30';
SELECT account AS whale FROM dalp.holders WHERE token_address = :'acb' ORDER BY balance DESC LIMIT 1 \gset
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM event_paths WHERE recipient = :'whale' AND amount > 0;
SELECT event_name, count(*) AS events_to_whale FROM event_paths
 WHERE recipient = :'whale' AND amount > 0 GROUP BY event_name;

-- ---------------------------------------------------------------------------
-- A value the column's type cannot take: the error names column, path, value
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE bad_int (symbol_number int OPTIONS (json_path 'symbol'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_int;
CREATE FOREIGN TABLE bad_fraction (supply int OPTIONS (json_path 'totalSupply'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_fraction;
CREATE FOREIGN TABLE bad_object (factory numeric OPTIONS (json_path 'tokenFactory'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_object;
CREATE FOREIGN TABLE bad_bool (decimals_flag bool OPTIONS (json_path 'decimals'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_bool;
-- a 0 is not read as false: only true and false are booleans
CREATE FOREIGN TABLE bad_zero (stalled bool OPTIONS (json_path 'stallSeconds'))
  SERVER sim OPTIONS (resource 'health_services');
SELECT * FROM bad_zero;
CREATE FOREIGN TABLE bad_array (name_list text[] OPTIONS (json_path 'name'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_array;
CREATE FOREIGN TABLE bad_element (codes int[] OPTIONS (json_path 'extensions'))
  SERVER sim OPTIONS (resource 'tokens');
SELECT * FROM bad_element;
-- uint256 amounts do not fit a bigint
CREATE FOREIGN TABLE bad_range (amount bigint OPTIONS (json_path 'values.amount'))
  SERVER sim OPTIONS (resource 'events', token_address :'acb');
SELECT max(amount) FROM bad_range;
-- the SQLSTATE is the type's own
SELECT pg_temp.sqlstate_of('SELECT * FROM bad_int') AS bad_int,
       pg_temp.sqlstate_of('SELECT * FROM bad_range') AS bad_range;

-- an empty path is rejected when it is set
CREATE FOREIGN TABLE empty_path (x text OPTIONS (json_path '')) SERVER sim OPTIONS (resource 'tokens');
