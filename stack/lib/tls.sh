# shellcheck shell=bash
# The stack's TLS material, made once with openssl under $STACK_DIR/tls (never committed):
#   ca.pem              a CA of the stack's own: what a client configured for the stack
#                       trusts (postgres.sslrootcert, cassandra.sslrootcert), and what
#                       the secure stack's servers take client certificates from
#   other-ca.pem        a CA that signed nothing the servers trust: what a client trusting
#                       the wrong CA holds, for tests
#   server.pem/.key     the servers' certificate, signed by ca.pem for $HOST (an IP
#                       subject alternative name: what verify-full checks, and all the
#                       Cassandra driver can check, as it connects to node addresses)
#                       and localhost; also a client certificate (clientAuth), which the
#                       stack's own tools and nodes present where one is required
#   server.p12          the same key and certificate as a PKCS12 keystore, for the JVMs,
#                       its password in server.p12.pass
#   tributary.pem/.key  tributary's client certificate (CN tributary, clientAuth only),
#                       signed by ca.pem: what config/secure.toml presents (sslcert,
#                       sslkey); PostgreSQL checks that it names the role
#   stranger.pem/.key   a client certificate for tributary signed by other-ca.pem, which
#                       no server takes, for tests
#   ca.p12              ca.pem as a PKCS12 truststore, for a JVM that checks client
#                       certificates (the secure stack's Cassandra); password server.p12.pass

# Signs certificate $2 (a file name under $tls) for subject $3 with CA $4 and the
# extensions $5, with a new key. $1: the service whose log gets openssl's output.
stack_tls_sign() {
	local service=$1 tls=$STACK_DIR/tls name=$2 subject=$3 ca=$4 extensions=$5 log
	log=$(log_file "$service")
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "$subject" -keyout "$tls/$name.key" -out "$tls/$name.csr" \
		>>"$log" 2>&1 || fail_with_log "$service" "openssl could not make the key of $name"
	printf '%s\n' "$extensions" >"$tls/$name.ext"
	openssl x509 -req -in "$tls/$name.csr" -CA "$tls/$ca.pem" -CAkey "$tls/$ca.key" \
		-CAcreateserial -days 3650 -extfile "$tls/$name.ext" -out "$tls/$name.pem" \
		>>"$log" 2>&1 || fail_with_log "$service" "openssl could not sign $name"
	rm -f "$tls/$name.csr" "$tls/$name.ext"
}

# Makes what is missing; a certificate that its CA did not sign, a server certificate
# that names another host or that cannot authenticate a client, is made again. $1: the
# service whose log gets openssl's output.
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
		stack_tls_sign "$service" server "/CN=$HOST" ca \
			"$(printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth' "$HOST")"
		rm -f "$tls/server.p12"
	fi
	local client
	for client in tributary:ca stranger:other-ca; do
		if [[ ! -f $tls/${client%:*}.key ]] ||
			! openssl verify -CAfile "$tls/${client#*:}.pem" "$tls/${client%:*}.pem" >/dev/null 2>&1; then
			stack_tls_sign "$service" "${client%:*}" /CN=tributary "${client#*:}" \
				"$(printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth')"
		fi
	done
	if [[ ! -f $tls/server.p12 ]]; then
		[[ -f $tls/server.p12.pass ]] || openssl rand -hex 16 >"$tls/server.p12.pass"
		openssl pkcs12 -export -name server -in "$tls/server.pem" -inkey "$tls/server.key" \
			-passout "file:$tls/server.p12.pass" -out "$tls/server.p12" >>"$log" 2>&1 ||
			fail_with_log "$service" "openssl could not make the PKCS12 keystore"
		rm -f "$tls/ca.p12"
	fi
	umask "$umask_before"
}

# The truststore of ca.pem (after stack_tls). keytool marks the certificate trusted,
# as a JVM requires; its password is read from the keystore's file, not a command line.
stack_truststore() {
	local service=$1 tls=$STACK_DIR/tls java
	[[ -f $tls/ca.p12 ]] && return
	java=$(java17) || die "$service: Java 17 not found (run: stack/stack.sh install)"
	"$(dirname "$java")/keytool" -importcert -noprompt -alias stack-ca -file "$tls/ca.pem" \
		-storetype PKCS12 -keystore "$tls/ca.p12" -storepass:file "$tls/server.p12.pass" \
		>>"$(log_file "$service")" 2>&1 || fail_with_log "$service" "keytool could not make the truststore"
	chmod 600 "$tls/ca.p12"
}
