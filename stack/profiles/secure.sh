# shellcheck shell=bash
# The secure stack (STACK=secure): one PostgreSQL, one Kafka node and one Cassandra node
# that require TLS and passwords from every client, and grant tributary only its own
# objects; plus Jaeger, to look for secrets in tributary's spans. What the secure tests
# (tests/secure/) run against, with `tributary --profile secure` (config/secure.toml).
#
#   PostgreSQL  TCP clients over TLS only, with a client certificate (pg_hba.conf
#               `hostssl … scram-sha-256 clientcert=…`, every other address `reject`):
#               role `tributary`'s must name it (verify-full), any other's be signed by
#               the stack's CA; scram-sha-256 passwords; role `tributary` owns
#               schema `tributary` and may connect to database `postgres`, nothing more
#               (PUBLIC's rights on the database and on schema public revoked)
#   Kafka       one SASL_SSL listener (SCRAM-SHA-512) that requires a client
#               certificate from the stack's CA, the controller listener on TLS
#               with client certificates; the StandardAuthorizer with no access where no
#               ACL grants it; super users `admin` and the node itself; user
#               `tributary` may do anything with topics, groups and transactional ids
#               whose names begin with "tributary", nothing else
#   Cassandra   TLS only with a client certificate from the stack's CA,
#               PasswordAuthenticator and CassandraAuthorizer; the default
#               superuser disabled for role `admin`; role `tributary` may create, alter,
#               read and write in keyspace `tributary` (and owns the tables it creates),
#               nothing else
#
# Certificates (.stack/secure/tls/, stack/lib/tls.sh: tributary presents tributary.pem,
# the stack's own tools server.pem) and passwords
# (.stack/secure/secrets/, one random password a file, made with the stack's data) live
# under the stack's directory, never in the repository; every file the stack writes
# there is its owner's only. To change a password, remove .stack/secure as a whole: the
# administrators' and Kafka's are set when the stores are first made. Provisioning
# (roles, grants, ACLs) runs after each store is ready, at every `up`, and changes
# nothing the second time. No password is ever on a command line or in a process's
# environment.

umask 077

HOST=127.0.0.1
STACK_DIR=${TRIBUTARY_STACK_DIR:-$ROOT/.stack}/secure
SECRETS_DIR=$STACK_DIR/secrets

PG_PORT=${TRIBUTARY_SECURE_PG_PORT:-57432}
KAFKA_PORT=${TRIBUTARY_SECURE_KAFKA_PORT:-39092}
KAFKA_CONTROLLER_PORT=${TRIBUTARY_SECURE_KAFKA_CONTROLLER_PORT:-39093}
CASSANDRA_PORT=${TRIBUTARY_SECURE_CASSANDRA_PORT:-39042}
CASSANDRA_STORAGE_PORT=${TRIBUTARY_SECURE_CASSANDRA_STORAGE_PORT:-37000}
JAEGER_OTLP_GRPC_PORT=${TRIBUTARY_SECURE_JAEGER_OTLP_GRPC_PORT:-34317}
JAEGER_OTLP_HTTP_PORT=${TRIBUTARY_SECURE_JAEGER_OTLP_HTTP_PORT:-34318}
JAEGER_QUERY_PORT=${TRIBUTARY_SECURE_JAEGER_QUERY_PORT:-36686}
JAEGER_HEALTH_PORT=${TRIBUTARY_SECURE_JAEGER_HEALTH_PORT:-33133}

SERVICES=(postgres kafka cassandra jaeger)

# What each store calls tributary's objects, and the name prefix of its Kafka ones.
TRIBUTARY_ROLE=tributary

PG_AUTH=scram
PG_SUPERUSER_PASSWORD_FILE=$SECRETS_DIR/postgres-admin

# The file holding password $1 (e.g. kafka-tributary), made once: 48 hex digits, which
# need no quoting in SQL, CQL or a JAAS line.
secret_file() {
	local file=$SECRETS_DIR/$1
	if [[ ! -s $file ]]; then
		mkdir -p "$SECRETS_DIR"
		chmod 700 "$SECRETS_DIR"
		openssl rand -hex 24 >"$file"
	fi
	echo "$file"
}

secret() { cat "$(secret_file "$1")"; }

service_start() {
	case $1 in
	postgres)
		secret_file postgres-admin >/dev/null
		start_postgres
		;;
	kafka)
		stack_tls kafka
		mkdir -p "$STACK_DIR/kafka"
		kafka_security >"$STACK_DIR/kafka/security.properties"
		printf 'SCRAM-SHA-512=[name=%s,password=%s]\n' admin "$(secret kafka-admin)" \
			"$TRIBUTARY_ROLE" "$(secret kafka-tributary)" >"$STACK_DIR/kafka/scram"
		KAFKA_NODE_ID=1 \
			KAFKA_VOTERS="1@$HOST:$KAFKA_CONTROLLER_PORT" \
			KAFKA_LISTENERS="SASL_SSL://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT" \
			KAFKA_ADVERTISED="SASL_SSL://$HOST:$KAFKA_PORT" \
			KAFKA_PROTOCOLS=SASL_SSL:SASL_SSL,CONTROLLER:SSL \
			KAFKA_RF=1 KAFKA_MIN_ISR=1 KAFKA_TLS=keystore KAFKA_INTER_BROKER=SASL_SSL \
			KAFKA_EXTRA_FILE=$STACK_DIR/kafka/security.properties KAFKA_SCRAM_FILE=$STACK_DIR/kafka/scram \
			kafka_start kafka
		;;
	cassandra)
		CASSANDRA_HOST=$HOST CASSANDRA_PORT=$CASSANDRA_PORT \
			CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT \
			CASSANDRA_SEEDS="$HOST:$CASSANDRA_STORAGE_PORT" CASSANDRA_TOKEN=0 CASSANDRA_HEAP=1g \
			CASSANDRA_TLS=required CASSANDRA_CLIENT_AUTH=required CASSANDRA_AUTH=password \
			cassandra_start cassandra
		;;
	jaeger) start_jaeger ;;
	esac
}

# The broker's SASL, its own login for inter-broker traffic, client certificates on both
# listeners (the node's own certificate is its controller login and what it presents to
# its SASL_SSL listener; a client's SASL user stays its principal there), and ACLs.
kafka_security() {
	cat <<PROPERTIES
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret kafka-admin)";
listener.name.sasl_ssl.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=$HOST
PROPERTIES
}

# Kafka's command-line tools as `admin`, presenting the stack's own certificate (a client
# configuration file of the stack's).
kafka_admin_config() {
	local file=$STACK_DIR/kafka/admin.properties
	cat >"$file" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret kafka-admin)";
ssl.truststore.type=PEM
ssl.truststore.location=$STACK_DIR/tls/ca.pem
ssl.keystore.type=PKCS12
ssl.keystore.location=$STACK_DIR/tls/server.p12
ssl.keystore.password=$(<"$STACK_DIR/tls/server.p12.pass")
PROPERTIES
	echo "$file"
}

# A store that started but could not be provisioned.
provision_failed() { die_with_log "$1" "$1 is up but provisioning failed: $2"; }

provision_postgres() {
	# The password goes in on standard input (hex digits: a plain literal).
	pg_admin_psql -v ON_ERROR_STOP=1 -v role="$TRIBUTARY_ROLE" <<SQL >>"$(log_file postgres)" 2>&1 ||
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$(secret postgres-tributary)';
CREATE SCHEMA IF NOT EXISTS tributary AUTHORIZATION :"role";
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE postgres TO :"role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
		provision_failed postgres "role $TRIBUTARY_ROLE, its schema and the revocations"
}

# What tributary does with each kind of object, and nothing more: create, describe
# (and read the configuration of), read and write its topics; join its groups and
# commit their offsets; run transactions under its transactional ids.
KAFKA_GRANTS=(
	"--topic Create Describe DescribeConfigs Read Write"
	"--group Read Describe"
	"--transactional-id Write Describe"
)

provision_kafka() {
	local grant resource operations operation args
	for grant in "${KAFKA_GRANTS[@]}"; do
		read -r resource operations <<<"$grant"
		args=()
		for operation in $operations; do args+=(--operation "$operation"); done
		kafka_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$HOST:$KAFKA_PORT" \
			--command-config "$(kafka_admin_config)" --add --allow-principal "User:$TRIBUTARY_ROLE" \
			"${args[@]}" --resource-pattern-type prefixed "$resource" "$TRIBUTARY_ROLE" \
			>>"$(log_file kafka)" 2>&1 || provision_failed kafka "the ACLs of $TRIBUTARY_ROLE ($resource)"
	done
}

# stack/probe.py as user $1 with the password in file $2, over TLS with the stack's own
# client certificate; the rest are probe.py's arguments.
probe_as() {
	local tls=$STACK_DIR/tls
	PROBE_CAFILE=$tls/ca.pem PROBE_CERTFILE=$tls/server.pem PROBE_KEYFILE=$tls/server.key \
		PROBE_USER=$1 PROBE_PASSWORD_FILE=$2 python3 "$ROOT/stack/probe.py" "${@:3}"
}

# CQL as `admin` (or, before it exists, as the default superuser), statements on stdin.
cassandra_cql() {
	probe_as "$1" "$2" cql-exec "$HOST" "$CASSANDRA_PORT"
}

cassandra_default_superuser() {
	local file=$SECRETS_DIR/cassandra-default
	[[ -s $file ]] || echo cassandra >"$file"
	echo "$file"
}

provision_cassandra() {
	local admin log
	admin=$(secret_file cassandra-admin)
	log=$(log_file cassandra)
	if ! echo "SELECT role FROM system_auth.roles LIMIT 1" | cassandra_cql admin "$admin" >/dev/null 2>&1; then
		cassandra_cql cassandra "$(cassandra_default_superuser)" >>"$log" 2>&1 <<CQL ||
CREATE ROLE IF NOT EXISTS admin WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '$(secret cassandra-admin)'
CQL
			provision_failed cassandra "role admin"
	fi
	# Creating a table grants its creator every permission on it: tributary's own
	# tables are its to alter and drop, the keyspace is not.
	cassandra_cql admin "$admin" >>"$log" 2>&1 <<CQL || provision_failed cassandra "role $TRIBUTARY_ROLE and its grants"
ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false
CREATE ROLE IF NOT EXISTS $TRIBUTARY_ROLE WITH LOGIN = true AND PASSWORD = '$(secret cassandra-tributary)'
ALTER ROLE $TRIBUTARY_ROLE WITH PASSWORD = '$(secret cassandra-tributary)'
CREATE KEYSPACE IF NOT EXISTS tributary WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}
GRANT CREATE ON KEYSPACE tributary TO $TRIBUTARY_ROLE
GRANT ALTER ON KEYSPACE tributary TO $TRIBUTARY_ROLE
GRANT SELECT ON KEYSPACE tributary TO $TRIBUTARY_ROLE
GRANT MODIFY ON KEYSPACE tributary TO $TRIBUTARY_ROLE
CQL
}

service_up() {
	local s
	for s in "${SERVICES[@]}"; do
		start_one "$s"
		if declare -F "provision_$s" >/dev/null; then "provision_$s"; fi
	done
}

service_address() {
	case $1 in
	postgres) echo "postgresql://$HOST:$PG_PORT/postgres (TLS, scram-sha-256)" ;;
	kafka) echo "$HOST:$KAFKA_PORT (SASL_SSL, SCRAM-SHA-512; controller $HOST:$KAFKA_CONTROLLER_PORT, TLS with client certificates)" ;;
	cassandra) echo "$HOST:$CASSANDRA_PORT (CQL over TLS, passwords)" ;;
	jaeger) echo "OTLP http $HOST:$JAEGER_OTLP_HTTP_PORT, query API http://$HOST:$JAEGER_QUERY_PORT/api/traces" ;;
	esac
}

# The readiness probes, as the stores' administrators (Cassandra's default superuser
# until `admin` exists).
service_probe() {
	case $1 in
	postgres) probe_postgres ;;
	kafka)
		[[ -s $SECRETS_DIR/kafka-admin ]] || return 1
		probe_as admin "$SECRETS_DIR/kafka-admin" kafka "$HOST" "$KAFKA_PORT" 2>/dev/null
		;;
	cassandra)
		[[ -f $STACK_DIR/tls/ca.pem ]] || return 1
		local user=admin password_file=$SECRETS_DIR/cassandra-admin
		if [[ ! -s $password_file ]] || ! probe_as admin "$password_file" cql "$HOST" "$CASSANDRA_PORT" >/dev/null 2>&1; then
			user=cassandra password_file=$(cassandra_default_superuser)
		fi
		probe_as "$user" "$password_file" cql "$HOST" "$CASSANDRA_PORT" 2>/dev/null
		;;
	jaeger) probe_jaeger ;;
	esac
}

# What config/secure.toml leaves to the environment: where the stack's CA, tributary's
# client certificate and its passwords are (files: the values never pass through the environment), the
# test suite's administrator passwords, and Jaeger.
service_env() {
	local ca=$STACK_DIR/tls/ca.pem cert=$STACK_DIR/tls/tributary.pem key=$STACK_DIR/tls/tributary.key name value
	while read -r name value; do
		printf 'export %s=%q\n' "$name" "$value"
	done <<ENV
TRIBUTARY_PROFILE secure
TRIBUTARY_CONFIG_DIR $ROOT/config
TRIBUTARY__POSTGRES__PORT $PG_PORT
TRIBUTARY__POSTGRES__SSLROOTCERT $ca
TRIBUTARY__POSTGRES__SSLCERT $cert
TRIBUTARY__POSTGRES__SSLKEY $key
TRIBUTARY__POSTGRES__PASSWORD_FILE $(secret_file postgres-tributary)
TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS $HOST:$KAFKA_PORT
TRIBUTARY__KAFKA__SSLROOTCERT $ca
TRIBUTARY__KAFKA__SSLCERT $cert
TRIBUTARY__KAFKA__SSLKEY $key
TRIBUTARY__KAFKA__SASL_PASSWORD_FILE $(secret_file kafka-tributary)
TRIBUTARY__CASSANDRA__CONTACT_POINTS $HOST:$CASSANDRA_PORT
TRIBUTARY__CASSANDRA__SSLROOTCERT $ca
TRIBUTARY__CASSANDRA__SSLCERT $cert
TRIBUTARY__CASSANDRA__SSLKEY $key
TRIBUTARY__CASSANDRA__PASSWORD_FILE $(secret_file cassandra-tributary)
TRIBUTARY__TELEMETRY__OTLP_ENDPOINT http://$HOST:$JAEGER_OTLP_HTTP_PORT
TRIBUTARY__TELEMETRY__QUERY_URL http://$HOST:$JAEGER_QUERY_PORT
TRIBUTARY_STACK_JAEGER_QUERY_URL http://$HOST:$JAEGER_QUERY_PORT
TRIBUTARY_SECURE_SECRETS_DIR $SECRETS_DIR
ENV
}
