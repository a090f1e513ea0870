#!/bin/sh
# Create Temporal's two databases on our PostgreSQL and bring their schemas to the version the server
# image expects, with the temporal-sql-tool that ships in temporalio/admin-tools of the same version.
# Safe to run on every `docker compose up`: `create` ignores an existing database, `setup-schema -v 0.0`
# leaves a newer version alone, and `update-schema` applies only the versions not yet applied.
# Connection settings come from the environment, which temporal-sql-tool reads itself:
# SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD. The database names are ours:
# SQL_DATABASE and SQL_VISIBILITY_DATABASE.
set -eu

: "${SQL_PLUGIN:?SQL_PLUGIN is required (postgres12)}"
: "${SQL_HOST:?SQL_HOST is required}"
: "${SQL_USER:?SQL_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
: "${SQL_DATABASE:?SQL_DATABASE is required}"
: "${SQL_VISIBILITY_DATABASE:?SQL_VISIBILITY_DATABASE is required}"
SQL_PORT="${SQL_PORT:-5432}"
SCHEMA_ROOT="${TEMPORAL_SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}"
export SQL_PORT

attempt=1
until nc -z -w 5 "$SQL_HOST" "$SQL_PORT"; do
    if [ "$attempt" -ge 30 ]; then
        echo "PostgreSQL at $SQL_HOST:$SQL_PORT is not accepting connections" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done

migrate() {  # migrate DATABASE SCHEMA_DIR
    echo "temporal-schema: $1 <- $2"
    temporal-sql-tool --db "$1" create
    temporal-sql-tool --db "$1" setup-schema -v 0.0
    temporal-sql-tool --db "$1" update-schema -d "$2"
}

migrate "$SQL_DATABASE" "$SCHEMA_ROOT/temporal/versioned"
migrate "$SQL_VISIBILITY_DATABASE" "$SCHEMA_ROOT/visibility/versioned"
echo "temporal-schema: done"
