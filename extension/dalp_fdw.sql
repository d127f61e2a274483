/* dalp_fdw--1.0.sql: SettleMint DALP REST API as foreign tables */
-- Built by the Makefile from the parts in extension/, this one first: the
-- schema check, the wrapper. Edit the parts, not dalp_fdw--1.0.sql.

\echo Use "CREATE EXTENSION dalp_fdw" to load this file. \quit

-- CREATE EXTENSION installs into a schema dalp_fdw that already exists.
-- One that another role owns, may create objects in, or has put objects in
-- could hold (now or later) a function that a call meant for ours resolves
-- to, an overload say: refuse it.
DO $$
DECLARE
    nsp oid;
    nsp_owner oid;
    installer oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
    others text;
BEGIN
    SELECT n.oid, n.nspowner INTO nsp, nsp_owner FROM pg_catalog.pg_namespace n WHERE n.nspname = '@extschema@';
    IF nsp_owner <> installer THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and is owned by role %', pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(nsp_owner))
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'Its owner could add functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = 'Check what it holds and drop or rename it, then run CREATE EXTENSION dalp_fdw again.';
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                               ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
      INTO others
      FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
     WHERE n.oid = nsp AND a.privilege_type = 'CREATE' AND a.grantee <> installer;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and lets % create objects in it', others
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'They could add functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = pg_catalog.format('Revoke it (REVOKE CREATE ON SCHEMA @extschema@ FROM %s), check what the schema holds, then run CREATE EXTENSION dalp_fdw again.', others);
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.owner)), ', ')
      INTO others
      FROM (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace = nsp
            UNION ALL SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.relnamespace = nsp
            UNION ALL SELECT t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace = nsp
            UNION ALL SELECT o.oprowner FROM pg_catalog.pg_operator o WHERE o.oprnamespace = nsp) AS o(owner)
     WHERE o.owner <> installer;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and holds objects of %', others
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'They could be functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = 'Check what the schema holds and drop or rename it, then run CREATE EXTENSION dalp_fdw again.';
    END IF;
END
$$;

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

-- Every function checks what its caller may do: the schema is for everyone.
-- Those that must not be called directly are revoked from PUBLIC where
-- they are made.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
