#!/usr/bin/env bash
# Initialises and runs PostgreSQL from the environment the way the official postgres
# image does (docker-library/postgres docker-entrypoint.sh):
#   POSTGRES_USER      the superuser, default postgres
#   POSTGRES_DB        created when it is not `postgres`, default $POSTGRES_USER
#   POSTGRES_PASSWORD  required unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_HOST_AUTH_METHOD  the pg_hba.conf method for remote hosts (default
#                      scram-sha-256); local socket connections are trusted
#   POSTGRES_INITDB_ARGS, PGDATA (default /var/lib/postgresql/data)
# The server runs as the postgres user: PostgreSQL refuses root.
set -euo pipefail

if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
chmod 3775 /var/run/postgresql

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z ${POSTGRES_PASSWORD:-} && $method != trust ]]; then
		cat >&2 <<'TEXT'
Error: Database is uninitialized and superuser password is not specified.
       Specify POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow all
       connections without a password (not recommended).
TEXT
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	chown postgres "$pwfile"
	read -r -a initdb_args <<<"${POSTGRES_INITDB_ARGS:-}"
	as_postgres initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust \
		-E UTF8 --locale=C.UTF-8 "${initdb_args[@]}"
	rm -f "$pwfile"
	printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
	if [[ $db != postgres ]]; then
		# A server on the socket only, as the official image's temporary one.
		as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
		as_postgres psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
		as_postgres pg_ctl -D "$PGDATA" -m fast -w stop
	fi
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
	postgres -D "$PGDATA" -c listen_addresses='*' "${@:2}"
