#!/usr/bin/env bash
# The role pipeline runs use for the promotion lock (MLOPS_PROMOTION_LOCK): it may log in to
# MLflow's database and take advisory locks, nothing else (no table, no schema, no other
# database). The postgres image runs this once, when it creates its data directory
# (/docker-entrypoint-initdb.d); on a database created before this file existed, run it by hand
# (docs/deploy.md, "3. Credentials"). Idempotent: a rerun resets the password and the rights.
set -euo pipefail
password_file="${PROMOTION_LOCK_PASSWORD_FILE:-/run/secrets/promotion-lock/PROMOTION_LOCK_PASSWORD}"
[ -s "$password_file" ] || { echo "promotion-lock-role.sh: no password in $password_file" >&2; exit 1; }
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" \
    --dbname "$POSTGRES_DB" -v password="$(cat "$password_file")" -v db="$POSTGRES_DB" <<'SQL'
SELECT 'CREATE ROLE promotion_lock'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promotion_lock') \gexec
ALTER ROLE promotion_lock WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD :'password';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO promotion_lock;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
