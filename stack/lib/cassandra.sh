# shellcheck shell=bash
# Cassandra 5.0 on Java 17. The profile describes a node with these variables, set for
# the call of cassandra_start:
#   CASSANDRA_HOST          listen_address and rpc_address (its own loopback address)
#   CASSANDRA_PORT          native_transport_port (CQL)
#   CASSANDRA_STORAGE_PORT  storage_port, the same on every node of a cluster
#   CASSANDRA_SEEDS         seeds, host:storage_port
#   CASSANDRA_TOKEN         its one token (num_tokens 1): spread evenly over the ring
#   CASSANDRA_HEAP          -Xms and -Xmx (at most 1g on our machines)
#   CASSANDRA_TLS           optional: "optional" offers TLS on the CQL port beside
#                           plaintext (the stack's server certificate, stack/lib/tls.sh;
#                           a client chooses, as with PostgreSQL); "required" takes TLS
#                           clients only
#   CASSANDRA_CLIENT_AUTH   optional, with CASSANDRA_TLS: "required" takes only clients
#                           that present a certificate the stack's CA signed
#   CASSANDRA_AUTH          optional: "password" turns on PasswordAuthenticator and
#                           CassandraAuthorizer (roles and grants); the default superuser
#                           cassandra/cassandra exists at once, for the profile to replace

cassandra_start() {
	local name=$1 home=$CACHE_DIR/cassandra-$CASSANDRA_VERSION dir
	dir=$(svc_dir "$name")
	local java
	java=$(java17) || die "$name: Java 17 not found (run: stack/stack.sh install)"
	mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc_raw,logs}
	# The keystore's password is in it.
	touch "$dir/cassandra.yaml"
	chmod 600 "$dir/cassandra.yaml"
	cat >"$dir/cassandra.yaml" <<EOF
cluster_name: tributary
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
num_tokens: 1
initial_token: $CASSANDRA_TOKEN
# Every node of a new cluster owns its token from the start: there is no data to stream,
# and bootstrapping would wait out ring_delay (30 s) per node.
auto_bootstrap: false
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true
listen_address: $CASSANDRA_HOST
rpc_address: $CASSANDRA_HOST
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CASSANDRA_SEEDS"
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
auto_snapshot: false
EOF
	if [[ -n ${CASSANDRA_TLS:-} ]]; then
		stack_tls "$name"
		cat >>"$dir/cassandra.yaml" <<EOF
client_encryption_options:
  enabled: true
  optional: $([[ $CASSANDRA_TLS == optional ]] && echo true || echo false)
  keystore: $STACK_DIR/tls/server.p12
  keystore_password: $(<"$STACK_DIR/tls/server.p12.pass")
  store_type: PKCS12
EOF
		if [[ ${CASSANDRA_CLIENT_AUTH:-} == required ]]; then
			stack_truststore "$name"
			cat >>"$dir/cassandra.yaml" <<EOF
  require_client_auth: true
  truststore: $STACK_DIR/tls/ca.p12
  truststore_password: $(<"$STACK_DIR/tls/server.p12.pass")
EOF
		else
			echo "  require_client_auth: false" >>"$dir/cassandra.yaml"
		fi
	fi
	cat >"$dir/logback.xml" <<EOF
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/logs/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE" />
    <appender-ref ref="STDOUT" />
  </root>
</configuration>
EOF
	local auth=()
	if [[ ${CASSANDRA_AUTH:-} == password ]]; then
		cat >>"$dir/cassandra.yaml" <<EOF
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
EOF
		# The default superuser is created at once rather than after 10 s.
		auth=(-Dcassandra.superuser_setup_delay_ms=0)
	fi
	local jamm
	jamm=$(ls "$home"/lib/jamm-*.jar 2>/dev/null | head -n 1)
	[[ -n $jamm ]] || die "$name: jamm agent jar missing from $home/lib"
	local jvm=(-Xms$CASSANDRA_HEAP -Xmx$CASSANDRA_HEAP -Xss256k -XX:+UseG1GC -XX:MaxGCPauseMillis=300
		-XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$dir/logs"
		-Djdk.attach.allowAttachSelf=true -Djava.net.preferIPv4Stack=true
		-Dio.netty.tryReflectionSetAccessible=true
		"@$ROOT/stack/jvm/cassandra-jvm17.options" -javaagent:"$jamm"
		-Dcassandra.config="file://$dir/cassandra.yaml"
		-Dcassandra-foreground=yes
		-Dcassandra.storagedir="$dir/data"
		-Dcassandra.logdir="$dir/logs"
		-Dlogback.configurationFile="$dir/logback.xml"
		-Dcassandra.skip_wait_for_gossip_to_settle=0
		"${auth[@]}"
		-cp "$home/lib/*")
	spawn "$name" "$java" "${jvm[@]}" org.apache.cassandra.service.CassandraDaemon
}
