#!/usr/bin/env bash
# Configures Kafka from the environment the way the official apache/kafka image does
# (its docker/resources/common-scripts/{configureDefaults,configure} and
# kafka.docker.KafkaDockerWrapper), then runs the broker in the foreground:
#   - the official defaults, each only where its variable is unset;
#   - every KAFKA_* variable but the JVM/logging ones becomes a server.properties key:
#     the prefix dropped, lower case, `_` → `.`, `__` → `_`, `___` → `-`
#     (KAFKA_LOG_DIRS → log.dirs, KAFKA_HEAP_OPTS stays a JVM option);
#   - the storage formatted with CLUSTER_ID on the first start, kept after that.
set -euo pipefail

# configureDefaults: each only where its variable is unset.
defaults=(
	CLUSTER_ID=5L6g3nShT-eMCtK--X86sw
	KAFKA_NODE_ID=1
	KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT
	KAFKA_LISTENERS=PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092
	KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092
	KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1
	KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0
	KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1
	KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1
	KAFKA_PROCESS_ROLES=broker,controller
	KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:29093
	KAFKA_INTER_BROKER_LISTENER_NAME=PLAINTEXT
	KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER
	KAFKA_LOG_DIRS=/tmp/kraft-combined-logs
)
for pair in "${defaults[@]}"; do
	name=${pair%%=*}
	[[ -n ${!name:-} ]] || export "$pair"
done

# KafkaDockerWrapper: the environment as server.properties.
excluded=" KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_OPTS KAFKA_JMX_OPTS \
KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS \
KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_JMX_HOSTNAME "
config=/opt/kafka/config
mkdir -p "$config"
: >"$config/server.properties"
while IFS= read -r name; do
	[[ $excluded == *" $name "* ]] && continue
	key=$(tr '[:upper:]' '[:lower:]' <<<"${name#KAFKA_}" | sed -e 's/_/./g' -e 's/\.\.\./-/g' -e 's/\.\./_/g')
	printf '%s=%s\n' "$key" "${!name}" >>"$config/server.properties"
done < <(compgen -e | grep '^KAFKA_' | sort)

cat >"$config/log4j2.properties" <<'LOG4J'
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:KAFKA_LOG4J_ROOT_LOGLEVEL:-INFO}
rootLogger.appenderRef.console.ref = console
logger.request.name = kafka.request.logger
logger.request.level = warn
LOG4J

classpath='/opt/kafka/libs/*'
log_opts=(-Dlog4j2.configurationFile="$config/log4j2.properties" -Dkafka.logs.dir=/opt/kafka/logs)
java -Xmx256m -XX:TieredStopAtLevel=1 "${log_opts[@]}" -cp "$classpath" kafka.tools.StorageTool \
	format --cluster-id "$CLUSTER_ID" -c "$config/server.properties" --ignore-formatted

# kafka-server-start.sh's defaults where the variables are unset.
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
read -r -a performance <<<"${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
read -r -a extra <<<"${KAFKA_OPTS:-}"
exec java "${heap[@]}" "${performance[@]}" "${log_opts[@]}" "${extra[@]}" -cp "$classpath" \
	kafka.Kafka "$config/server.properties"
