# shellcheck shell=bash
# PostgreSQL: a throwaway cluster from Debian's binaries on its own port ($PG_PORT, bound
# to $HOST), trust authentication, TLS offered (a client chooses: tributary's default is
# plaintext, `postgres.sslmode = "verify-full"` with $STACK_DIR/tls/ca.pem encrypts).
# PostgreSQL is a single server in every profile.

# The server refuses to run as root, so as root it runs as the `postgres` user, which
# must be able to reach its data directory. A checkout under a private directory (e.g.
# one made by mktemp -d) is not reachable by that user: the cluster then lives in a
# runtime directory of its own and .stack/postgres/data links to it.
pg_datadir() {
	local dir=$STACK_DIR/postgres/data
	if [[ $(id -u) != 0 ]]; then
		echo "$dir"
		return
	fi
	if [[ -L $dir ]]; then
		readlink "$dir"
		return
	fi
	mkdir -p "$STACK_DIR/postgres"
	if runuser -u postgres -- test -x "$STACK_DIR/postgres" 2>/dev/null; then
		echo "$dir"
	else
		local runtime=/var/tmp/tributary-postgres-$PG_PORT
		ln -sfn "$runtime" "$dir"
		echo "$runtime"
	fi
}

# The command prefix that runs a program as the data directory's owner.
pg_owner_prefix() {
	if [[ $(id -u) == 0 ]]; then
		echo runuser -u postgres --
	fi
}

# The server certificate (stack/lib/tls.sh) copied into the data directory: the server
# reads its key only if its owner alone can.
pg_tls() {
	local datadir=$1 tls=$STACK_DIR/tls
	stack_tls postgres
	local owner=()
	[[ $(id -u) == 0 ]] && owner=(-o postgres -g postgres)
	install -m 600 "${owner[@]}" "$tls/server.pem" "$datadir/server.crt"
	install -m 600 "${owner[@]}" "$tls/server.key" "$datadir/server.key"
}

start_postgres() {
	local bindir datadir
	bindir=$(pg_bindir) || die "postgres: no server binaries under /usr/lib/postgresql (run: stack/stack.sh install)"
	datadir=$(pg_datadir)
	if [[ ! -f $datadir/PG_VERSION ]]; then
		mkdir -p "$datadir"
		[[ $(id -u) == 0 ]] && chown postgres:postgres "$datadir"
		$(pg_owner_prefix) "$bindir/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
			>>"$(log_file postgres)" 2>&1 || fail_with_log postgres "initdb failed"
	fi
	pg_tls "$datadir"
	local sockdir=$datadir/sock
	$(pg_owner_prefix) mkdir -p "$sockdir"
	# fsync off: a throwaway test cluster; the chaos suite kills the process, not the host.
	spawn postgres $(pg_owner_prefix) "$bindir/postgres" -D "$datadir" \
		-c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories="$sockdir" \
		-c max_connections=200 -c fsync=off -c full_page_writes=off \
		-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key
}

probe_postgres() {
	psql -X -q -t -A -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -c 'SELECT version()' 2>/dev/null | cut -d' ' -f1,2
}
