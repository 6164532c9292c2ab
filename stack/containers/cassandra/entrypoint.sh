#!/usr/bin/env bash
# Configures Cassandra from the environment the way the official cassandra image does
# (docker-library/cassandra's docker-entrypoint.sh and conf/cassandra-env.sh), at every
# start (a restarted container may have a new address), then runs it in the foreground:
#   CASSANDRA_LISTEN_ADDRESS     default `auto`: the container's own address
#   CASSANDRA_BROADCAST_ADDRESS  default: the listen address
#   CASSANDRA_RPC_ADDRESS        default 0.0.0.0
#   CASSANDRA_BROADCAST_RPC_ADDRESS  default: the broadcast address
#   CASSANDRA_SEEDS              default: the broadcast address
#   CASSANDRA_CLUSTER_NAME, CASSANDRA_NUM_TOKENS, CASSANDRA_ENDPOINT_SNITCH
#   MAX_HEAP_SIZE / HEAP_NEWSIZE set together or not at all (then sized from memory as
#                                cassandra-env.sh does); HEAP_NEWSIZE is unused under G1
# It runs as root, unlike the official image: JVMs of one non-root uid share its thread
# limit (nproc) across containers, and two JVMs of this stack would compete for it.
set -euo pipefail

if [[ ${1:-} != cassandra ]]; then
	exec "$@"
fi

own_address=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
listen=${CASSANDRA_LISTEN_ADDRESS:-auto}
[[ $listen == auto ]] && listen=$own_address
broadcast=${CASSANDRA_BROADCAST_ADDRESS:-$listen}
rpc=${CASSANDRA_RPC_ADDRESS:-0.0.0.0}
broadcast_rpc=${CASSANDRA_BROADCAST_RPC_ADDRESS:-$broadcast}
seeds=${CASSANDRA_SEEDS:-$broadcast}

if [[ -n ${MAX_HEAP_SIZE:-} && -z ${HEAP_NEWSIZE:-} ]] || [[ -z ${MAX_HEAP_SIZE:-} && -n ${HEAP_NEWSIZE:-} ]]; then
	echo "please set or unset MAX_HEAP_SIZE and HEAP_NEWSIZE in pairs (see cassandra-env.sh)" >&2
	exit 1
fi
if [[ -z ${MAX_HEAP_SIZE:-} ]]; then
	# cassandra-env.sh: max(min(1/2 memory, 1 GiB), min(1/4 memory, 8 GiB)).
	memory_mb=$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)
	half=$((memory_mb / 2 < 1024 ? memory_mb / 2 : 1024))
	quarter=$((memory_mb / 4 < 8192 ? memory_mb / 4 : 8192))
	MAX_HEAP_SIZE=$((half > quarter ? half : quarter))M
fi

data=/var/lib/cassandra
mkdir -p "$CASSANDRA_CONF" "$data"/{data,commitlog,saved_caches,hints,cdc_raw} /var/log/cassandra
cat >"$CASSANDRA_CONF/cassandra.yaml" <<YAML
cluster_name: '${CASSANDRA_CLUSTER_NAME:-Test Cluster}'
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: ${CASSANDRA_ENDPOINT_SNITCH:-SimpleSnitch}
num_tokens: ${CASSANDRA_NUM_TOKENS:-16}
allocate_tokens_for_local_replication_factor: 3
storage_port: 7000
native_transport_port: 9042
start_native_transport: true
listen_address: $listen
broadcast_address: $broadcast
rpc_address: $rpc
broadcast_rpc_address: $broadcast_rpc
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$seeds"
data_file_directories:
  - $data/data
commitlog_directory: $data/commitlog
saved_caches_directory: $data/saved_caches
hints_directory: $data/hints
cdc_raw_directory: $data/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
YAML
cat >"$CASSANDRA_CONF/logback.xml" <<'XML'
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT" /></root>
</configuration>
XML

jamm=$(ls "$CASSANDRA_HOME"/lib/jamm-*.jar | head -n 1)
exec java -Xms"$MAX_HEAP_SIZE" -Xmx"$MAX_HEAP_SIZE" -Xss256k -XX:+UseG1GC -XX:MaxGCPauseMillis=300 \
	-Djdk.attach.allowAttachSelf=true -Djava.net.preferIPv4Stack=true \
	-Dio.netty.tryReflectionSetAccessible=true \
	@/etc/cassandra/jvm17-server.options -javaagent:"$jamm" \
	-Dcassandra.config="file://$CASSANDRA_CONF/cassandra.yaml" \
	-Dcassandra-foreground=yes \
	-Dcassandra.storagedir="$data" \
	-Dcassandra.logdir=/var/log/cassandra \
	-Dlogback.configurationFile="$CASSANDRA_CONF/logback.xml" \
	-cp "$CASSANDRA_HOME/lib/*" org.apache.cassandra.service.CassandraDaemon
