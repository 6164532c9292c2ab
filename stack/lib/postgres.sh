# shellcheck shell=bash
# PostgreSQL: a throwaway cluster from Debian's binaries on its own port ($PG_PORT, bound
# to $HOST), trust authentication, TLS offered (a client chooses: tributary's default is
# plaintext, `postgres.sslmode = "verify-full"` with $STACK_DIR/tls/ca.pem encrypts).
# PostgreSQL is a single server in every profile.
#
# PG_AUTH (set by the profile): "trust" (the default: any client, as any role) or
# "scram" (the secure stack: scram-sha-256 passwords, TCP clients over TLS only and with
# a client certificate from the stack's CA, the one of role $TRIBUTARY_ROLE naming it;
# every other connection rejected; the superuser's password in
# PG_SUPERUSER_PASSWORD_FILE).

# The server refuses to run as root, so as root it runs as the `postgres` user, which
# must be able to reach its data directory. A checkout under a private directory (e.g.
# one made by mktemp -d) is not reachable by that user: the cluster then lives in a
# directory of its own under /var/tmp, made for this stack (mktemp: no other checkout
# shares it), and .stack/…/postgres/data links to it.
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
		local runtime
		runtime=$(mktemp -d /var/tmp/tributary-postgres.XXXXXX)
		chown postgres:postgres "$runtime"
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
# reads its key only if its owner alone can; and on the secure stack the CA that signs
# the client certificates pg_hba.conf asks for.
pg_tls() {
	local datadir=$1 tls=$STACK_DIR/tls
	stack_tls postgres
	install -m 600 "${PG_OWNER[@]}" "$tls/server.pem" "$datadir/server.crt"
	install -m 600 "${PG_OWNER[@]}" "$tls/server.key" "$datadir/server.key"
	# Only where pg_hba.conf asks for client certificates: with a CA file the server asks
	# every TLS client for one, and checks any it is sent.
	if [[ ${PG_AUTH:-trust} == scram ]]; then
		install -m 600 "${PG_OWNER[@]}" "$tls/ca.pem" "$datadir/ca.crt"
	else
		rm -f "$datadir/ca.crt"
	fi
}

# `install`'s owner arguments for files the server reads.
PG_OWNER=()
[[ $(id -u) == 0 ]] && PG_OWNER=(-o postgres -g postgres)

# The secure stack's client authentication: passwords (scram-sha-256) on the local
# socket, and over TLS from $HOST with a client certificate the stack's CA signed, which
# for role $TRIBUTARY_ROLE must name it (verify-full: its CN is the role); plaintext TCP
# and any other address rejected.
pg_hba_scram() {
	local hba
	hba=$(mktemp)
	cat >"$hba" <<HBA
# Written by stack/lib/postgres.sh (the secure stack) at every start.
# TYPE    DATABASE USER ADDRESS          METHOD
local     all      all                   scram-sha-256
hostssl   all      ${TRIBUTARY_ROLE:?}  $HOST/32  scram-sha-256 clientcert=verify-full
hostssl   all      all  $HOST/32         scram-sha-256 clientcert=verify-ca
host      all      all  0.0.0.0/0        reject
host      all      all  ::/0             reject
HBA
	install -m 600 "${PG_OWNER[@]}" "$hba" "$1/pg_hba.conf"
	rm -f "$hba"
}

start_postgres() {
	local bindir datadir
	bindir=$(pg_bindir) || die "postgres: no server binaries under /usr/lib/postgresql (run: stack/stack.sh install)"
	datadir=$(pg_datadir)
	if [[ ! -f $datadir/PG_VERSION ]]; then
		mkdir -p "$datadir"
		[[ $(id -u) == 0 ]] && chown postgres:postgres "$datadir"
		local auth=(--auth=trust)
		if [[ ${PG_AUTH:-trust} == scram ]]; then
			# initdb reads the password as the data directory's owner.
			install -m 600 "${PG_OWNER[@]}" "$PG_SUPERUSER_PASSWORD_FILE" "$datadir.pwfile"
			auth=(--auth=scram-sha-256 --pwfile="$datadir.pwfile")
		fi
		$(pg_owner_prefix) "$bindir/initdb" -D "$datadir" -U postgres "${auth[@]}" -E UTF8 --locale=C.UTF-8 \
			>>"$(log_file postgres)" 2>&1 || {
			rm -f "$datadir.pwfile"
			fail_with_log postgres "initdb failed"
		}
		rm -f "$datadir.pwfile"
	fi
	[[ ${PG_AUTH:-trust} == scram ]] && pg_hba_scram "$datadir"
	pg_tls "$datadir"
	local sockdir=$datadir/sock
	$(pg_owner_prefix) mkdir -p "$sockdir"
	local client_ca=()
	[[ ${PG_AUTH:-trust} == scram ]] && client_ca=(-c ssl_ca_file=ca.crt)
	# fsync off: a throwaway test cluster; the chaos suite kills the process, not the host.
	spawn postgres $(pg_owner_prefix) "$bindir/postgres" -D "$datadir" \
		-c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories="$sockdir" \
		-c max_connections=200 -c fsync=off -c full_page_writes=off \
		-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key "${client_ca[@]}"
}

probe_postgres() {
	pg_admin_psql -t -A -c 'SELECT version()' 2>/dev/null | cut -d' ' -f1,2
}

# psql as the superuser, over TLS with its password and the stack's own client
# certificate on the secure stack. Arguments are psql's. The password reaches psql in a
# password file of the stack's (owner-only, written by a shell builtin), never in its
# environment or on a command line.
pg_admin_psql() {
	if [[ ${PG_AUTH:-trust} == scram ]]; then
		local passfile=$STACK_DIR/postgres/admin.pgpass
		(
			umask 077
			printf '*:*:*:postgres:%s\n' "$(<"$PG_SUPERUSER_PASSWORD_FILE")" >"$passfile"
		)
		PGPASSFILE=$passfile PGSSLMODE=verify-full PGSSLROOTCERT=$STACK_DIR/tls/ca.pem \
			PGSSLCERT=$STACK_DIR/tls/server.pem PGSSLKEY=$STACK_DIR/tls/server.key \
			psql -X -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
	else
		psql -X -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
	fi
}
