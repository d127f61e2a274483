-- Options are validated at CREATE/ALTER time, with hints naming the fix.
\i test/regress_setup.sql

-- the extension creates schema dalp_fdw and the wrapper
SELECT n.nspname AS schema, e.extversion
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'dalp_fdw';
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc
  FROM pg_foreign_data_wrapper WHERE fdwname = 'dalp_fdw';

-- server options
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw;
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'ftp://example.com');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://user:pw@example.com');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com?x=1');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', page_size '0');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', page_size '500');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', page_size 'ten');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', concurrency '33');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', connect_timeout_ms '-1');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', timeout_ms '-5');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', max_retries '-1');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', verify_tls 'maybe');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', fdw_request_cost '-1');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', pagesize '10');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', api_key 'sm_dalp_secret');
CREATE SERVER good FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'https://platform.example.com/', page_size '1', concurrency '32',
           connect_timeout_ms '1', timeout_ms '100', max_retries '0', retry_base_ms '0',
           rate_limit_per_minute '60', verify_tls 'true', fdw_startup_cost '10',
           fdw_request_cost '5.5', fdw_tuple_cost '0.1', use_remote_estimate 'false');
ALTER SERVER good OPTIONS (SET page_size '201');
ALTER SERVER good OPTIONS (ADD bogus 'x');
ALTER SERVER good OPTIONS (DROP base_url);
ALTER SERVER good OPTIONS (SET page_size '200');
-- what a read does when the ledger keeps moving: server, or table, decides
ALTER SERVER good OPTIONS (ADD on_ledger_change 'warn');
ALTER SERVER good OPTIONS (ADD on_ledger_change 'warning', ADD ledger_rereads '11');
ALTER SERVER good OPTIONS (ADD on_ledger_change 'warning', ADD ledger_rereads '0');
-- the wrapper itself takes no options
ALTER FOREIGN DATA WRAPPER dalp_fdw OPTIONS (ADD base_url 'https://x');

-- user mappings: api_key only there, nothing else
CREATE USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (key 'x');
CREATE USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (api_key '');
CREATE USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (api_key 'sm_dalp_abc');
DROP USER MAPPING FOR CURRENT_USER SERVER good;

-- foreign tables: a resource is required and must exist
CREATE FOREIGN TABLE ft_bad (id text) SERVER good;
CREATE FOREIGN TABLE ft_bad (id text) SERVER good OPTIONS (resource 'wallets');
CREATE FOREIGN TABLE ft_bad (id text) SERVER good OPTIONS (resource 'events', token_address 'abc');
CREATE FOREIGN TABLE ft_bad (id text) SERVER good OPTIONS (resource 'events', page_size '5');
CREATE FOREIGN TABLE ft_bad (id text OPTIONS (path 'x')) SERVER good OPTIONS (resource 'events');
CREATE FOREIGN TABLE ft_bad (id text OPTIONS (json_path '')) SERVER good OPTIONS (resource 'events');
CREATE FOREIGN TABLE ft_ok (id text) SERVER good
  OPTIONS (resource 'events', token_address '0x00000000000000000000000000000000000000aA');
ALTER FOREIGN TABLE ft_ok OPTIONS (ADD on_ledger_change 'error', ADD ledger_rereads '10');
ALTER FOREIGN TABLE ft_ok OPTIONS (SET on_ledger_change 'ignore');
ALTER FOREIGN TABLE ft_ok OPTIONS (DROP resource);

-- a query without a user mapping says which statement to run
SELECT * FROM ft_ok;

-- a superuser may create a mapping without a key; the query then says so
CREATE USER MAPPING FOR CURRENT_USER SERVER good;
SELECT * FROM ft_ok;
DROP USER MAPPING FOR CURRENT_USER SERVER good;

-- non-superusers: no mapping without a key, no weakened TLS
CREATE ROLE regress_dalp_user;
GRANT USAGE ON FOREIGN SERVER good TO regress_dalp_user;
GRANT USAGE ON FOREIGN DATA WRAPPER dalp_fdw TO regress_dalp_user;
SET ROLE regress_dalp_user;
CREATE USER MAPPING FOR CURRENT_USER SERVER good;
CREATE USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (api_key 'sm_dalp_user');
CREATE SERVER user_srv FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'https://example.com', verify_tls 'false');
CREATE SERVER user_srv FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'https://example.com', ca_file '/etc/ssl/certs/ca-certificates.crt');
CREATE SERVER user_srv FOREIGN DATA WRAPPER dalp_fdw
  OPTIONS (base_url 'https://example.com', verify_tls 'true');
-- the key stays hidden from roles that do not own the mapping
RESET ROLE;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'good';
SET ROLE regress_dalp_user;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'sim';
RESET ROLE;

-- no control character in any option: in a header (api_key) or a URL
-- (base_url) a CR/LF would add headers of its own; the value is not shown
CREATE USER MAPPING FOR CURRENT_USER SERVER good OPTIONS (api_key E'k\r\nX-Injected: yes');
ALTER USER MAPPING FOR regress_dalp_user SERVER good OPTIONS (SET api_key E'sm_dalp_user\n');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url E'https://example.com/\r\nX-Injected: yes');
CREATE SERVER bad FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'https://example.com', ca_file E'/tmp/ca\tfile');
CREATE FOREIGN TABLE ft_bad (id text OPTIONS (json_path E'id\u007f')) SERVER good OPTIONS (resource 'events');

-- plain http sends the key in clear: a non-superuser may use it only for
-- the loopback (127.0.0.0/8, ::1, localhost)
SET ROLE regress_dalp_user;
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://example.com');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'HTTP://10.0.0.1:8080/dalp');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://127.0.0.1.example.com');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://localhost.example.com/');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://[::ffff:127.0.0.1]:8080');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://127.1');
CREATE SERVER user_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://[::1');
CREATE SERVER user_http1 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://127.0.0.1:8080');
CREATE SERVER user_http2 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://127.45.6.7/dalp');
CREATE SERVER user_http3 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://LocalHost');
CREATE SERVER user_http4 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://[::1]:8080/');
ALTER SERVER user_http1 OPTIONS (SET base_url 'http://example.com');
ALTER SERVER user_http1 OPTIONS (SET base_url 'https://example.com');
RESET ROLE;
-- a superuser may point plain http anywhere
CREATE SERVER su_http FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url 'http://example.com');
DROP SERVER su_http;

DROP SERVER user_srv CASCADE;
DROP SERVER good CASCADE;
DROP OWNED BY regress_dalp_user;
DROP ROLE regress_dalp_user;
