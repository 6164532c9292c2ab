# shellcheck shell=bash
# Kafka 4.1 in KRaft mode: every node a combined broker and controller. The profile
# describes a node with these variables, set for the call of kafka_start:
#   KAFKA_NODE_ID     node.id
#   KAFKA_LISTENERS   listeners (PLAINTEXT and CONTROLLER, perhaps more)
#   KAFKA_ADVERTISED  advertised.listeners
#   KAFKA_PROTOCOLS   listener.security.protocol.map
#   KAFKA_VOTERS      controller.quorum.voters, the same on every node
#   KAFKA_RF          replication factor of the internal topics (offsets, transaction
#                     state, share coordinator) and default.replication.factor
#   KAFKA_MIN_ISR     their min.insync.replicas, and the broker default
#   KAFKA_TLS         optional: "keystore" gives the listeners mapped to SSL or SASL_SSL
#                     the stack's server certificate (stack/lib/tls.sh) as a PKCS12
#                     keystore, and the stack's CA as the truststore (what the node
#                     trusts of its own connections, and of the client certificates a
#                     listener with ssl.client.auth=required takes)
#   KAFKA_INTER_BROKER  optional: inter.broker.listener.name (default PLAINTEXT)
#   KAFKA_EXTRA_FILE  optional: a file of more server.properties lines (the secure
#                     stack's SASL, ACL authorizer and super users)
#   KAFKA_SCRAM_FILE  optional: a file of SCRAM credentials created when the node is
#                     formatted, each "SCRAM-SHA-512=[name=…,password=…]" (KIP-900) on a
#                     line of its own
# Files, not values: a variable set for a function call is in the environment of every
# process it starts (the broker's, for as long as it runs), and a command-line argument
# is visible to every local user; these hold passwords.
# Every node of a stack is formatted with the same cluster id, kept in
# $STACK_DIR/kafka-cluster-id.

# The JVM flags of node directory $2, into the array named $1 (paths may hold spaces).
kafka_jvm() {
	local -n flags=$1
	local dir=$2
	flags=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs"
		-cp "$CACHE_DIR/kafka-$KAFKA_VERSION/lib/*")
}

kafka_cluster_id() {
	local java=$1 name=$2 file=$STACK_DIR/kafka-cluster-id
	if [[ ! -s $file ]]; then
		local jvm
		kafka_jvm jvm "$(svc_dir "$name")"
		"$java" "${jvm[@]}" kafka.tools.StorageTool random-uuid >"$file.tmp" 2>>"$(log_file "$name")" ||
			fail_with_log "$name" "StorageTool random-uuid failed"
		mv "$file.tmp" "$file"
	fi
	cat "$file"
}

kafka_start() {
	local name=$1 dir java
	dir=$(svc_dir "$name")
	java=$(java17) || die "$name: Java 17 not found (run: stack/stack.sh install)"
	mkdir -p "$dir/data" "$dir/logs"
	# The keystore's password (and the secure stack's own login) are in it.
	touch "$dir/server.properties"
	chmod 600 "$dir/server.properties"
	cat >"$dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_VOTERS
listeners=$KAFKA_LISTENERS
advertised.listeners=$KAFKA_ADVERTISED
controller.listener.names=CONTROLLER
inter.broker.listener.name=${KAFKA_INTER_BROKER:-PLAINTEXT}
listener.security.protocol.map=$KAFKA_PROTOCOLS
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$KAFKA_RF
min.insync.replicas=$KAFKA_MIN_ISR
offsets.topic.replication.factor=$KAFKA_RF
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$KAFKA_RF
transaction.state.log.min.isr=$KAFKA_MIN_ISR
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$KAFKA_RF
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# Retention is checked every 30 s (default 5 min), so that the soak's short topic
# retention shows in its Kafka disk within minutes.
log.retention.check.interval.ms=30000
PROPERTIES
	if [[ ${KAFKA_TLS:-} == keystore ]]; then
		stack_tls "$name"
		cat >>"$dir/server.properties" <<PROPERTIES
ssl.keystore.type=PKCS12
ssl.keystore.location=$STACK_DIR/tls/server.p12
ssl.keystore.password=$(<"$STACK_DIR/tls/server.p12.pass")
ssl.truststore.type=PEM
ssl.truststore.location=$STACK_DIR/tls/ca.pem
PROPERTIES
	fi
	[[ -z ${KAFKA_EXTRA_FILE:-} ]] || cat "$KAFKA_EXTRA_FILE" >>"$dir/server.properties"
	cat >"$dir/log4j2.properties" <<PROPERTIES
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = warn
PROPERTIES
	local jvm
	kafka_jvm jvm "$dir"
	if [[ ! -f $dir/data/meta.properties ]]; then
		# Static controller.quorum.voters: format needs no --standalone or
		# --initial-controllers, only the cluster id every voter shares.
		# The tool's arguments in a java @argfile (owner-only): the SCRAM passwords stay
		# off the command line.
		local args=$dir/format.args credential cluster_id
		cluster_id=$(kafka_cluster_id "$java" "$name")
		(
			umask 077
			printf '"%s"\n' kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$args"
			if [[ -n ${KAFKA_SCRAM_FILE:-} ]]; then
				while IFS= read -r credential; do
					[[ -n $credential ]] && printf '"--add-scram"\n"%s"\n' "$credential" >>"$args"
				done <"$KAFKA_SCRAM_FILE"
			fi
		)
		"$java" "${jvm[@]}" "@$args" >>"$(log_file "$name")" 2>&1 || {
			rm -f "$args"
			fail_with_log "$name" "StorageTool format failed"
		}
		rm -f "$args"
	fi
	spawn "$name" "$java" "${jvm[@]}" kafka.Kafka "$dir/server.properties"
}

# Runs one of Kafka's own command-line tools (a class of kafka-tools) and prints its
# output. Quiet: log4j falls back to errors on the console without a configuration.
kafka_tool() {
	local java class=$1
	shift
	java=$(java17) || die "Java 17 not found (run: stack/stack.sh install)"
	"$java" -Xmx256m -XX:TieredStopAtLevel=1 -cp "$CACHE_DIR/kafka-$KAFKA_VERSION/lib/*" "$class" "$@"
}

# The node id that leads partition $3 of topic $2, asked through $1 (bootstrap list).
# (--topic is a regular expression to TopicCommand: the dots are escaped, and the
# answer's Topic: field must be the topic itself.)
kafka_partition_leader() {
	kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --describe --topic "^${2//./\\.}\$" |
		awk -v t="$2" -v p="$3" '{ topic = ""; part = ""; for (i = 1; i < NF; i++) { if ($i == "Topic:") topic = $(i + 1); if ($i == "Partition:") part = $(i + 1); if ($i == "Leader:" && topic == t && part == p) { print $(i + 1); exit } } }'
}

# The node id of the transaction coordinator of transactional id $2.
kafka_transaction_coordinator() {
	kafka_tool org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$1" describe --transactional-id "$2" |
		awk '!col { for (i = 1; i <= NF; i++) if ($i == "CoordinatorId") col = i; next } { print $col; exit }'
}

# The node id of the active KRaft controller (the quorum's leader).
kafka_active_controller() {
	kafka_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$1" describe --status |
		awk -F': *' '$1 == "LeaderId" { print $2; exit }'
}

# How many partitions have fewer in-sync replicas than replicas.
# Fails when the cluster does not answer.
kafka_under_replicated() {
	local listing
	listing=$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --describe --under-replicated-partitions 2>/dev/null) ||
		return 1
	grep -c 'Partition:' <<<"$listing" || true
}
