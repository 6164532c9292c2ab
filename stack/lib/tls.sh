# shellcheck shell=bash
# The stack's TLS material, made once with openssl under $STACK_DIR/tls (never committed):
#   ca.pem              a CA of the stack's own: what a client configured for the stack
#                       trusts (postgres.sslrootcert, cassandra.sslrootcert)
#   other-ca.pem        a CA that signed nothing: what a client trusting the wrong CA
#                       holds, for tests
#   server.pem/.key     the servers' certificate, signed by ca.pem for $HOST (an IP
#                       subject alternative name: what verify-full checks, and all the
#                       Cassandra driver can check, as it connects to node addresses)
#                       and localhost; also a client certificate (clientAuth), which
#                       the secure stack's Kafka presents to its own controller listener
#   server.p12          the same key and certificate as a PKCS12 keystore, for the JVMs,
#                       its password in server.p12.pass

# Makes what is missing; a server certificate that another CA signed, that names
# another host or that cannot authenticate a client is made again. $1: the service whose log gets openssl's output.
stack_tls() {
	local service=$1 tls=$STACK_DIR/tls ca log umask_before
	log=$(log_file "$service")
	# Keys and the keystore's password readable by their owner only.
	umask_before=$(umask)
	umask 077
	mkdir -p "$tls"
	for ca in ca other-ca; do
		[[ -f $tls/$ca.pem ]] && continue
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-days 3650 -subj "/CN=tributary stack $ca" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
			-keyout "$tls/$ca.key" -out "$tls/$ca.pem" >>"$log" 2>&1 ||
			fail_with_log "$service" "openssl could not make the stack's $ca"
	done
	if [[ ! -f $tls/server.key ]] ||
		! openssl verify -CAfile "$tls/ca.pem" "$tls/server.pem" >/dev/null 2>&1 ||
		! openssl x509 -in "$tls/server.pem" -noout -checkip "$HOST" 2>/dev/null | grep -q 'does match' ||
		! openssl x509 -in "$tls/server.pem" -noout -ext extendedKeyUsage 2>/dev/null | grep -q 'Client Auth'; then
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=$HOST" -keyout "$tls/server.key" -out "$tls/server.csr" \
			>>"$log" 2>&1 || fail_with_log "$service" "openssl could not make a key"
		printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$HOST" >"$tls/server.ext"
		openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
			-CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.pem" \
			>>"$log" 2>&1 || fail_with_log "$service" "openssl could not sign the server certificate"
		rm -f "$tls/server.p12"
	fi
	if [[ ! -f $tls/server.p12 ]]; then
		[[ -f $tls/server.p12.pass ]] || openssl rand -hex 16 >"$tls/server.p12.pass"
		openssl pkcs12 -export -name server -in "$tls/server.pem" -inkey "$tls/server.key" \
			-passout "file:$tls/server.p12.pass" -out "$tls/server.p12" >>"$log" 2>&1 ||
			fail_with_log "$service" "openssl could not make the PKCS12 keystore"
	fi
	umask "$umask_before"
}
