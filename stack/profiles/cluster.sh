# shellcheck shell=bash
# The cluster stack (STACK=cluster): three Kafka 4.1 nodes, each a broker and one of a
# three-voter KRaft controller quorum, and three Cassandra 5.0 nodes, node N of each on
# its own loopback address 127.0.0.N (Linux routes all of 127.0.0.0/8 to lo), plus one
# PostgreSQL. Internal topics have replication factor 3 and min.insync.replicas 2; the
# transaction state log too. No Jaeger or Toxiproxy: the cluster chaos suite kills,
# freezes and partitions nodes instead of degrading links.
#
# Its ports differ from the single stack's (9092, 9042, 55432, …) so that both can run
# on one machine without a conflict: every node keeps the same ports on its own address.

HOST=127.0.0.1
# Under the single stack's directory, in a folder of its own (pid files, data).
STACK_DIR=${TRIBUTARY_STACK_DIR:-$ROOT/.stack}/cluster
CLUSTER_NODES=(1 2 3)

PG_PORT=${TRIBUTARY_CLUSTER_PG_PORT:-55433}
KAFKA_PORT=${TRIBUTARY_CLUSTER_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${TRIBUTARY_CLUSTER_KAFKA_CONTROLLER_PORT:-19093}
CASSANDRA_PORT=${TRIBUTARY_CLUSTER_CASSANDRA_PORT:-19042}
CASSANDRA_STORAGE_PORT=${TRIBUTARY_CLUSTER_CASSANDRA_STORAGE_PORT:-17000}
# Cassandra heap per node: three nodes share our 24 GiB with three brokers.
CASSANDRA_NODE_HEAP=${TRIBUTARY_CLUSTER_CASSANDRA_HEAP:-1g}

SERVICES=(postgres cassandra-1 cassandra-2 cassandra-3 kafka-1 kafka-2 kafka-3)

node_host() { echo "127.0.0.$1"; }

# The comma-separated host:port list of every node's listener on `port`.
node_list() {
	local port=$1 n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("$(node_host "$n"):$port"); done
	(
		IFS=,
		echo "${out[*]}"
	)
}

# Murmur3 tokens spread evenly: node N owns the N-th third of the ring.
cassandra_token() {
	case $1 in
	1) echo -9223372036854775808 ;;
	2) echo -3074457345618258603 ;;
	3) echo 3074457345618258602 ;;
	esac
}

kafka_voters() {
	local n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("$n@$(node_host "$n"):$KAFKA_CONTROLLER_PORT"); done
	(
		IFS=,
		echo "${out[*]}"
	)
}

service_start() {
	local name=$1 n=${1##*-} host
	host=$(node_host "$n")
	case $name in
	postgres) start_postgres ;;
	kafka-?)
		SPAWN_CGROUP=$(node_cgroup_dir "$n") \
			KAFKA_NODE_ID=$n \
			KAFKA_VOTERS=$(kafka_voters) \
			KAFKA_LISTENERS="PLAINTEXT://$host:$KAFKA_PORT,CONTROLLER://$host:$KAFKA_CONTROLLER_PORT" \
			KAFKA_ADVERTISED="PLAINTEXT://$host:$KAFKA_PORT" \
			KAFKA_PROTOCOLS=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT \
			KAFKA_RF=3 KAFKA_MIN_ISR=2 \
			kafka_start "$name"
		;;
	cassandra-?)
		SPAWN_CGROUP=$(node_cgroup_dir "$n") \
			CASSANDRA_HOST=$host CASSANDRA_PORT=$CASSANDRA_PORT \
			CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT \
			CASSANDRA_SEEDS="$(node_host 1):$CASSANDRA_STORAGE_PORT" \
			CASSANDRA_TOKEN=$(cassandra_token "$n") CASSANDRA_HEAP=$CASSANDRA_NODE_HEAP \
			cassandra_start "$name"
		;;
	esac
}

service_address() {
	local n=${1##*-}
	case $1 in
	postgres) echo "postgresql://postgres@$HOST:$PG_PORT/postgres" ;;
	kafka-?) echo "$(node_host "$n"):$KAFKA_PORT (controller $(node_host "$n"):$KAFKA_CONTROLLER_PORT)" ;;
	cassandra-?) echo "$(node_host "$n"):$CASSANDRA_PORT (CQL)" ;;
	esac
}

# One node's own readiness: it answers a real request. (Whether the cluster has formed
# is cluster_formed's question.)
service_probe() {
	local n=${1##*-}
	case $1 in
	postgres) probe_postgres ;;
	kafka-?) python3 "$ROOT/stack/probe.py" kafka "$(node_host "$n")" "$KAFKA_PORT" 2>/dev/null ;;
	cassandra-?) python3 "$ROOT/stack/probe.py" cql "$(node_host "$n")" "$CASSANDRA_PORT" 2>/dev/null ;;
	esac
}

# Wait until `command` succeeds, printing `what` and the answer; fail after the deadline.
wait_formed() {
	local what=$1 started=$SECONDS answer
	shift
	until answer=$("$@" 2>&1); do
		if ((SECONDS - started >= READY_DEADLINE_S)); then
			die "$what: not formed after ${READY_DEADLINE_S}s: $answer"
		fi
		sleep 1
	done
	printf '%-12s up    %s  [%s, formed in %ss]\n' "$what" "$(service_address "$what" 2>/dev/null)" "$answer" "$((SECONDS - started))"
}

# For `status`: every broker registered, seen from every broker, every partition's
# replicas in sync, and every Cassandra node up, normal, on one schema version and
# holding no hints.
service_formed() {
	local n answer
	for n in "${CLUSTER_NODES[@]}"; do
		if ! answer=$(python3 "$ROOT/stack/probe.py" kafka "$(node_host "$n")" "$KAFKA_PORT" "${#CLUSTER_NODES[@]}" 2>&1); then
			printf '%-12s no    kafka-%s: %s\n' formed "$n" "$answer"
			return 1
		fi
	done
	local lagging
	if ! lagging=$(kafka_under_replicated "$(node_list "$KAFKA_PORT")"); then
		printf '%-12s no    kafka: cannot list under-replicated partitions\n' formed
		return 1
	fi
	if [[ $lagging != 0 ]]; then
		printf '%-12s no    kafka: %s partition(s) under-replicated (a replica catching up)\n' formed "$lagging"
		return 1
	fi
	if ! answer=$(python3 "$ROOT/stack/probe.py" cql-all "$(node_host 1)" "$CASSANDRA_PORT" 2>&1); then
		printf '%-12s no    cassandra: %s\n' formed "$answer"
		return 1
	fi
	# Up and normal is not enough for a CREATE or DROP: the driver waits (60 s) until
	# every node holds the same schema. And a node back from a kill takes its missed
	# writes as hints for a while; Cassandra 5.0.6 can fail a DROP of a table that
	# hints are still writing to ("Unknown CF" in MigrationStage), and that node then
	# stays on its old schema version until it restarts.
	local hosts=() schema
	for n in "${CLUSTER_NODES[@]}"; do hosts+=("$(node_host "$n")"); done
	if ! schema=$(python3 "$ROOT/stack/probe.py" cql-hints "$CASSANDRA_PORT" "${hosts[@]}" 2>&1) ||
		! schema=$(python3 "$ROOT/stack/probe.py" cql-schema "$CASSANDRA_PORT" "${hosts[@]}" 2>&1); then
		printf '%-12s no    cassandra: %s\n' formed "$schema"
		return 1
	fi
	printf '%-12s yes   %s brokers registered with each broker, none under-replicated; cassandra %s, %s\n' formed "${#CLUSTER_NODES[@]}" "$answer" "$schema"
}

# Cassandra nodes join one after another (a node joins through the seed, and three JVMs
# starting at once on two cores time each other out). The brokers are spawned together:
# a controller quorum of three answers nothing until two voters run.
service_up() {
	local n
	start_one postgres
	for n in "${CLUSTER_NODES[@]}"; do start_one "cassandra-$n"; done
	wait_formed "cassandra ring" python3 "$ROOT/stack/probe.py" cql-all "$(node_host 1)" "$CASSANDRA_PORT"
	for n in "${CLUSTER_NODES[@]}"; do start_one "kafka-$n" --no-wait; done
	for n in "${CLUSTER_NODES[@]}"; do wait_ready "kafka-$n"; done
	wait_formed "kafka quorum" python3 "$ROOT/stack/probe.py" kafka "$(node_host 1)" "$KAFKA_PORT" "${#CLUSTER_NODES[@]}"
}

service_env() {
	cat <<ENV
export TRIBUTARY__POSTGRES__HOST=$HOST
export TRIBUTARY__POSTGRES__PORT=$PG_PORT
export TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS=$(node_list "$KAFKA_PORT")
export TRIBUTARY__CASSANDRA__CONTACT_POINTS=$(node_list "$CASSANDRA_PORT")
export TRIBUTARY__TELEMETRY__OTLP_ENDPOINT=
export TRIBUTARY__KAFKA__RECORD_FORMAT=json
ENV
}

# Heal before the nodes stop; the cgroups go once they are empty (service_stopped).
service_down() {
	partition_heal
}

service_stopped() {
	partition_clear
}

# Each node's schema version; the nodes off the majority's are restarted, one after
# another, each back up before the next.
schema_resync() {
	local n answer
	local -A version
	for n in "${CLUSTER_NODES[@]}"; do
		answer=$(python3 "$ROOT/stack/probe.py" cql-schema "$CASSANDRA_PORT" "$(node_host "$n")") ||
			die "schema-resync: cassandra-$n does not answer"
		version[$n]=${answer##* }
	done
	local majority
	majority=$(printf '%s\n' "${version[@]}" | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
	for n in "${CLUSTER_NODES[@]}"; do
		[[ ${version[$n]} == "$majority" ]] && continue
		log "cassandra-$n is on schema ${version[$n]}, the others on $majority: restarting it"
		stop_one "cassandra-$n"
		start_one "cassandra-$n"
	done
}

PROFILE_COMMANDS=(who partition heal node-cgroup schema-resync)

# The cluster's own commands, for the chaos suite:
#   who leader TOPIC PARTITION | who coordinator TRANSACTIONAL_ID | who controller
#                          the node id (1-3) that holds that role now, asked of Kafka
#   partition N            cut node N (kafka-N and cassandra-N) off from the rest
#   heal                   remove every partition
#   node-cgroup N          node N's cgroup directory: a process that writes its pid to
#                          cgroup.procs there is on node N's side of a partition
#   schema-resync          restart every Cassandra node whose schema version is not the
#                          majority's (a node left behind by a failed schema change,
#                          see service_formed, loads the schema again at start)
service_command() {
	local bootstrap
	bootstrap=$(node_list "$KAFKA_PORT")
	case ${1:-} in
	who)
		local answer
		case ${2:-} in
		leader) answer=$(kafka_partition_leader "$bootstrap" "${3:?topic}" "${4:?partition}") ;;
		coordinator) answer=$(kafka_transaction_coordinator "$bootstrap" "${3:?transactional id}") ;;
		controller) answer=$(kafka_active_controller "$bootstrap") ;;
		*) die "who: leader TOPIC PARTITION | coordinator TRANSACTIONAL_ID | controller" ;;
		esac
		[[ $answer =~ ^[0-9]+$ ]] || die "who ${2}: Kafka gave no node id"
		echo "$answer"
		;;
	partition)
		local n=${2:?node}
		[[ " ${CLUSTER_NODES[*]} " == *" $n "* ]] || die "partition: no node $n (nodes: ${CLUSTER_NODES[*]})"
		partition_node "$n" "$(node_host "$n")" "$KAFKA_PORT,$KAFKA_CONTROLLER_PORT,$CASSANDRA_PORT,$CASSANDRA_STORAGE_PORT"
		;;
	heal) partition_heal ;;
	schema-resync) schema_resync ;;
	node-cgroup)
		local dir
		dir=$(node_cgroup_dir "${2:?node}")
		[[ -n $dir ]] || die "node-cgroup: no writable cgroup2 hierarchy"
		echo "$dir"
		;;
	esac
}
