#!/bin/sh
# First boot of an empty data directory only (postgres image, /docker-entrypoint-initdb.d):
# one login role per tenant of this server, so Temporal and salesflow cannot touch each other's data.
#   temporal   may create databases; the temporal-schema job creates and migrates `temporal` and
#              `temporal_visibility` with it.
#   salesflow  owns the `salesflow` database; `salesflow migrate` creates the schema in it.
# The image sources this file rather than running it, so no `set -u` here: it would leak into its entrypoint.
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set for the postgresql service}"
: "${SALESFLOW_DB_PASSWORD:?SALESFLOW_DB_PASSWORD must be set for the postgresql service}"

# Passwords go in as psql variables (:'name' quotes them), never pasted into the SQL text.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=temporal_password="$TEMPORAL_DB_PASSWORD" \
    --set=salesflow_password="$SALESFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE salesflow LOGIN PASSWORD :'salesflow_password';
CREATE DATABASE salesflow OWNER salesflow;
SQL
