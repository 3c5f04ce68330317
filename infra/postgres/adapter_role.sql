-- The login role adapters use on the local stack (scripts/services.sh runs this
-- as the cluster's superuser, in the querybus database, at every `up`).
--
-- Not a superuser, no CREATEROLE/CREATEDB/REPLICATION/BYPASSRLS, and no member
-- of pg_execute_server_program / pg_read_server_files / pg_write_server_files:
-- whatever SQL a caller manages to send, it cannot run programs or touch files
-- on the database host, make roles, or get around row-level security.
-- `querybus serve` refuses to start with a login that has any of those.
--
-- Grants: what the demo and the tests need, and no more: connect to this
-- database, use and create objects in schema public (the idempotency table;
-- DDL tests through the bus), DML on the tables and sequences that the
-- superuser (tests' setup connections) creates, and read the replication
-- statistics the router samples (pg_monitor: statistics only, no code).
--
-- The password is read from a file (psql variable adapter_password_file), so
-- it never appears on a command line or in the server log.
\set ON_ERROR_STOP on
SELECT 'CREATE ROLE querybus_adapter LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'querybus_adapter') \gexec
\set adapter_password `cat :'adapter_password_file'`
SET log_statement = 'none';
ALTER ROLE querybus_adapter WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION
    NOBYPASSRLS INHERIT PASSWORD :'adapter_password';
RESET log_statement;
\unset adapter_password
REVOKE pg_execute_server_program, pg_read_server_files, pg_write_server_files
    FROM querybus_adapter;
GRANT pg_monitor TO querybus_adapter;
GRANT CONNECT, TEMPORARY ON DATABASE querybus TO querybus_adapter;
GRANT USAGE, CREATE ON SCHEMA public TO querybus_adapter;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON ALL TABLES IN SCHEMA public TO querybus_adapter;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO querybus_adapter;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLES TO querybus_adapter;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO querybus_adapter;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT USAGE, CREATE ON SCHEMAS TO querybus_adapter;
