#!/bin/sh
# Temporal's two databases (history and visibility) on PostgreSQL, created or upgraded to the
# schema of the admin-tools image's version. Idempotent: run by compose before the server.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS não definido}"
: "${POSTGRES_USER:?POSTGRES_USER não definido}"
: "${SQL_PASSWORD:?SQL_PASSWORD não definido}"
PORT="${DB_PORT:-5432}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  echo "aguardando PostgreSQL do Temporal em $POSTGRES_SEEDS:$PORT"
  sleep 2
done

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  dir=${db#*:}
  # `create` fails when the database exists: that is the normal case on a restart.
  sql --db "$name" create || echo "banco $name já existe"
  # setup-schema -v 0.0 only creates the version table when missing; update-schema is idempotent.
  sql --db "$name" setup-schema -v 0.0 || echo "tabela de versão de $name já existe"
  sql --db "$name" update-schema -d "$SCHEMA_DIR/$dir/versioned"
done
echo "esquema do Temporal pronto"
