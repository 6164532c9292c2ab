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

# The stack's TLS material for PostgreSQL, made once with openssl: a CA of the stack's
# own (tls/ca.pem), a server certificate it signs for $HOST and localhost (what
# verify-full checks) copied into the data directory for the server, and another CA that
# signed nothing (tls/other-ca.pem: what a client trusting the wrong CA holds, for tests).
# Never committed: it lives under .stack/.
pg_tls() {
	local datadir=$1 tls=$STACK_DIR/tls ca
	mkdir -p "$tls"
	for ca in ca other-ca; do
		[[ -f $tls/$ca.pem ]] && continue
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-days 3650 -subj "/CN=tributary stack $ca" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
			-keyout "$tls/$ca.key" -out "$tls/$ca.pem" >>"$(log_file postgres)" 2>&1 ||
			fail_with_log postgres "openssl could not make the stack's $ca"
	done
	# (Re)made when missing, signed by another CA, or naming another host.
	if [[ ! -f $tls/postgres.key ]] ||
		! openssl verify -CAfile "$tls/ca.pem" "$tls/postgres.pem" >/dev/null 2>&1 ||
		! openssl x509 -in "$tls/postgres.pem" -noout -checkip "$HOST" 2>/dev/null | grep -q 'does match'; then
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=$HOST" -keyout "$tls/postgres.key" -out "$tls/postgres.csr" \
			>>"$(log_file postgres)" 2>&1 || fail_with_log postgres "openssl could not make a key"
		printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$HOST" >"$tls/postgres.ext"
		openssl x509 -req -in "$tls/postgres.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
			-CAcreateserial -days 3650 -extfile "$tls/postgres.ext" -out "$tls/postgres.pem" \
			>>"$(log_file postgres)" 2>&1 || fail_with_log postgres "openssl could not sign the server certificate"
	fi
	# The server reads its key only if its owner alone can.
	local owner=()
	[[ $(id -u) == 0 ]] && owner=(-o postgres -g postgres)
	install -m 600 "${owner[@]}" "$tls/postgres.pem" "$datadir/server.crt"
	install -m 600 "${owner[@]}" "$tls/postgres.key" "$datadir/server.key"
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
