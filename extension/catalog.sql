-- ---------------------------------------------------------------------------
-- extension/catalog.sql: the resource and option catalogs, as the C code
-- holds them
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

-- The options, one row each as src/options.c defines them; README.md's
-- option list is checked against it (test/readme_tables.py).
CREATE FUNCTION catalog_options(
    OUT option text,
    OUT type text,              -- url, integer, bytes, boolean, cost, text, secret, ...
    OUT accepted_in text[],     -- server, table (overrides the server's), user mapping, column
    OUT default_value text,     -- what a server without the option gets; NULL: none
    OUT min_value int,          -- integer options: the accepted range
    OUT max_value int,
    OUT choices text,           -- the accepted values, when a list
    OUT superuser_only text)    -- when only a superuser may set it; NULL: anyone
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_options'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
