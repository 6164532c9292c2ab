#!/usr/bin/env bash
# The local stack without Docker: real Apache Kafka (KRaft), Apache Cassandra 5.0,
# PostgreSQL, Jaeger v2 and Toxiproxy as local processes bound to 127.0.0.1.
#
#   stack/stack.sh install   install what is missing (apt packages, Maven classpaths, Go builds)
#   stack/stack.sh up        install, then start every service one after another and wait
#                            until each answers a real readiness probe
#   stack/stack.sh down      stop every service (SIGTERM, then SIGKILL after a deadline)
#   stack/stack.sh status    one line per service: up or down, with its address
#   stack/stack.sh env       the TRIBUTARY__* variables that point tributary at this stack
#   stack/stack.sh start|stop|kill|pause|resume SERVICE   one service (the chaos suite)
#
# Data and logs live under $TRIBUTARY_STACK_DIR (default: <repo>/.stack). Downloads and
# built tools are cached under $TRIBUTARY_CACHE_DIR (default: ~/.cache/tributary) so a
# warm start does no network work. Every port below can be overridden from the environment.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${TRIBUTARY_STACK_DIR:-$ROOT/.stack}
CACHE_DIR=${TRIBUTARY_CACHE_DIR:-$HOME/.cache/tributary}
HOST=127.0.0.1

KAFKA_VERSION=4.1.1
CASSANDRA_VERSION=5.0.6
JAEGER_VERSION=v1.76.0 # the v1 tag of the Jaeger v2.13.0 release (see STACK.md)
TOXIPROXY_VERSION=v2.12.0

PG_PORT=${TRIBUTARY_STACK_PG_PORT:-55432}
KAFKA_PORT=${TRIBUTARY_STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TRIBUTARY_STACK_KAFKA_CONTROLLER_PORT:-9093}
# A second Kafka listener that advertises a Toxiproxy address, so a client that
# bootstraps through the proxy keeps talking through it (the chaos suite's Kafka link).
KAFKA_PROXIED_PORT=${TRIBUTARY_STACK_KAFKA_PROXIED_PORT:-9094}
KAFKA_PROXY_PORT=${TRIBUTARY_STACK_KAFKA_PROXY_PORT:-29092}
CASSANDRA_PORT=${TRIBUTARY_STACK_CASSANDRA_PORT:-9042}
CASSANDRA_STORAGE_PORT=${TRIBUTARY_STACK_CASSANDRA_STORAGE_PORT:-7000}
JAEGER_OTLP_GRPC_PORT=${TRIBUTARY_STACK_JAEGER_OTLP_GRPC_PORT:-4317}
JAEGER_OTLP_HTTP_PORT=${TRIBUTARY_STACK_JAEGER_OTLP_HTTP_PORT:-4318}
JAEGER_QUERY_PORT=${TRIBUTARY_STACK_JAEGER_QUERY_PORT:-16686}
JAEGER_HEALTH_PORT=${TRIBUTARY_STACK_JAEGER_HEALTH_PORT:-13133}
TOXIPROXY_PORT=${TRIBUTARY_STACK_TOXIPROXY_PORT:-8474}

# Deadlines for readiness, in seconds. Cassandra's first boot on 2 cores is the slowest.
READY_DEADLINE_S=${TRIBUTARY_STACK_READY_DEADLINE_S:-180}
STOP_DEADLINE_S=${TRIBUTARY_STACK_STOP_DEADLINE_S:-30}

SERVICES=(postgres kafka cassandra jaeger toxiproxy)

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
	printf '[stack] error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------------------

java17() {
	local candidate
	for candidate in "${JAVA17_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/java-17-openjdk; do
		if [[ -n $candidate && -x $candidate/bin/java ]]; then
			echo "$candidate/bin/java"
			return 0
		fi
	done
	return 1
}

pg_bindir() {
	local dir
	for dir in /usr/lib/postgresql/*/bin; do
		if [[ -x $dir/postgres && -x $dir/initdb ]]; then
			echo "$dir"
			return 0
		fi
	done
	return 1
}

install_packages() {
	local missing=()
	java17 >/dev/null || missing+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null || missing+=(maven)
	pg_bindir >/dev/null || missing+=(postgresql)
	command -v psql >/dev/null || missing+=(postgresql-client)
	command -v python3 >/dev/null || missing+=(python3)
	command -v curl >/dev/null || missing+=(curl)
	command -v cmake >/dev/null || missing+=(cmake) # rdkafka's bundled librdkafka build
	# librdkafka 2.12 includes <curl/curl.h> even when built without curl (it tests
	# WITH_OAUTHBEARER_OIDC with #ifdef, and cmake defines it as 0): the headers must exist.
	[[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ||
		-f /usr/include/aarch64-linux-gnu/curl/curl.h ]] || missing+=(libcurl4-openssl-dev)
	command -v g++ >/dev/null || missing+=(g++)
	command -v make >/dev/null || missing+=(make)
	command -v runuser >/dev/null || missing+=(util-linux)
	# The dashboard test drives Debian's headless Chromium.
	command -v chromium >/dev/null || missing+=(chromium)
	((${#missing[@]} == 0)) && return 0
	if [[ $(id -u) != 0 ]]; then
		die "missing packages: ${missing[*]} (install them with: sudo apt-get install -y ${missing[*]})"
	fi
	log "installing Debian packages: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian's postgresql package creates and starts a default cluster on 5432; ours is
	# a separate throwaway cluster, the default one is left alone.
}

# Resolve a Maven pom's runtime classpath into $1/lib, once.
maven_classpath() {
	local dest=$1 pom=$2
	[[ -f $dest/.complete ]] && return 0
	log "resolving $(basename "$pom" .pom.xml) classpath from Maven Central into $dest"
	rm -rf "$dest"
	mkdir -p "$dest/lib"
	(cd "$dest" && mvn -B -q -Dstyle.color=never -f "$pom" \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
		-DoutputDirectory="$dest/lib" -DincludeScope=runtime) ||
		die "maven could not resolve $pom"
	touch "$dest/.complete"
}

install_kafka() {
	maven_classpath "$CACHE_DIR/kafka-$KAFKA_VERSION" "$ROOT/stack/maven/kafka.pom.xml"
}

install_cassandra() {
	maven_classpath "$CACHE_DIR/cassandra-$CASSANDRA_VERSION" "$ROOT/stack/maven/cassandra.pom.xml"
}

install_jaeger() {
	local bin=$CACHE_DIR/bin/jaeger-$JAEGER_VERSION
	[[ -x $bin ]] && return 0
	command -v go >/dev/null || die "jaeger: the Go toolchain is required to build it (go not found)"
	# `go install …@v1.76.0` refuses a module whose go.mod has replace directives, so the
	# binary is built inside a scratch module that requires it as a tool.
	local build=$CACHE_DIR/build/jaeger
	log "building jaeger $JAEGER_VERSION with the Go toolchain (several minutes on 2 cores, once)"
	rm -rf "$build"
	mkdir -p "$build" "$CACHE_DIR/bin"
	(
		cd "$build" &&
			go mod init tributary-jaeger-build >/dev/null 2>&1 &&
			go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
			go build -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
	) >"$CACHE_DIR/build/jaeger.log" 2>&1 || {
		tail -n 20 "$CACHE_DIR/build/jaeger.log" >&2
		die "jaeger: build failed (log: $CACHE_DIR/build/jaeger.log)"
	}
	mv "$bin.tmp" "$bin"
}

install_toxiproxy() {
	local bin=$CACHE_DIR/bin/toxiproxy-server-$TOXIPROXY_VERSION
	[[ -x $bin ]] && return 0
	command -v go >/dev/null || die "toxiproxy: the Go toolchain is required to build it (go not found)"
	log "building toxiproxy $TOXIPROXY_VERSION with go install"
	local gobin=$CACHE_DIR/build/toxiproxy-bin
	mkdir -p "$gobin" "$CACHE_DIR/bin"
	GOBIN=$gobin go install \
		"github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
		"github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION" ||
		die "toxiproxy: go install failed"
	cp "$gobin/cli" "$CACHE_DIR/bin/toxiproxy-cli-$TOXIPROXY_VERSION"
	cp "$gobin/server" "$bin"
}

cmd_install() {
	install_packages
	install_kafka
	install_cassandra
	install_toxiproxy
	install_jaeger
}

# ---------------------------------------------------------------------------------------
# Process bookkeeping
# ---------------------------------------------------------------------------------------

svc_dir() { echo "$STACK_DIR/$1"; }
pid_file() { echo "$STACK_DIR/$1/pid"; }
log_file() { echo "$STACK_DIR/$1/$1.log"; }

svc_pid() {
	local f
	f=$(pid_file "$1")
	[[ -f $f ]] || return 1
	local pid
	pid=$(<"$f")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Run a command in its own session (process group) so stop/kill reach every child.
spawn() {
	local name=$1
	shift
	local log
	log=$(log_file "$name")
	setsid "$@" >>"$log" 2>&1 </dev/null &
	echo $! >"$(pid_file "$name")"
}

address() {
	case $1 in
	postgres) echo "postgresql://postgres@$HOST:$PG_PORT/postgres" ;;
	kafka) echo "$HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)" ;;
	cassandra) echo "$HOST:$CASSANDRA_PORT (CQL)" ;;
	jaeger) echo "OTLP grpc $HOST:$JAEGER_OTLP_GRPC_PORT, OTLP http $HOST:$JAEGER_OTLP_HTTP_PORT, query http://$HOST:$JAEGER_QUERY_PORT" ;;
	toxiproxy) echo "http://$HOST:$TOXIPROXY_PORT (API)" ;;
	esac
}

# The real readiness question for each service; prints a description on success.
probe() {
	case $1 in
	postgres) psql -X -q -t -A -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -c 'SELECT version()' 2>/dev/null | cut -d' ' -f1,2 ;;
	kafka) python3 "$ROOT/stack/probe.py" kafka "$HOST" "$KAFKA_PORT" 2>/dev/null ;;
	cassandra) python3 "$ROOT/stack/probe.py" cql "$HOST" "$CASSANDRA_PORT" 2>/dev/null ;;
	jaeger) curl -fsS -m 2 "http://$HOST:$JAEGER_HEALTH_PORT/status" >/dev/null 2>&1 &&
		curl -fsS -m 2 "http://$HOST:$JAEGER_QUERY_PORT/api/services" >/dev/null 2>&1 && echo "jaeger $JAEGER_VERSION" ;;
	toxiproxy) curl -fsS -m 2 "http://$HOST:$TOXIPROXY_PORT/version" 2>/dev/null | head -c 60 | sed 's/^/toxiproxy /' ;;
	esac
}

fail_with_log() {
	local name=$1 why=$2
	printf '[stack] error: %s failed to start: %s\n' "$name" "$why" >&2
	printf '[stack] last lines of %s:\n' "$(log_file "$name")" >&2
	tail -n 30 "$(log_file "$name")" >&2 2>/dev/null || true
	exit 1
}

# Poll the probe until it answers, the process dies, or the deadline passes.
wait_ready() {
	local name=$1 started=$SECONDS answer
	while true; do
		if answer=$(probe "$name") && [[ -n $answer ]]; then
			printf '%-10s up    %s  [%s, ready in %ss]\n' "$name" "$(address "$name")" "$answer" "$((SECONDS - started))"
			return 0
		fi
		if ! svc_pid "$name" >/dev/null; then
			fail_with_log "$name" "the process exited"
		fi
		if ((SECONDS - started >= READY_DEADLINE_S)); then
			fail_with_log "$name" "not ready after ${READY_DEADLINE_S}s"
		fi
		sleep 0.5
	done
}

# ---------------------------------------------------------------------------------------
# PostgreSQL: a throwaway cluster from Debian's binaries on its own port, trust auth.
# ---------------------------------------------------------------------------------------

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
	local sockdir=$datadir/sock
	$(pg_owner_prefix) mkdir -p "$sockdir"
	# fsync off: a throwaway test cluster; the chaos suite kills the process, not the host.
	spawn postgres $(pg_owner_prefix) "$bindir/postgres" -D "$datadir" \
		-c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories="$sockdir" \
		-c max_connections=200 -c fsync=off -c full_page_writes=off
}

# ---------------------------------------------------------------------------------------
# Kafka: one combined broker + controller in KRaft mode.
# ---------------------------------------------------------------------------------------

start_kafka() {
	local home=$CACHE_DIR/kafka-$KAFKA_VERSION dir
	dir=$(svc_dir kafka)
	local java
	java=$(java17) || die "kafka: Java 17 not found (run: stack/stack.sh install)"
	mkdir -p "$dir/data" "$dir/logs"
	cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,PROXIED://$HOST:$KAFKA_PROXIED_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,PROXIED://$HOST:$KAFKA_PROXY_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# Retention is checked every 30 s (default 5 min), so that the soak's short topic
# retention shows in its Kafka disk within minutes.
log.retention.check.interval.ms=30000
EOF
	cat >"$dir/log4j2.properties" <<EOF
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
EOF
	local jvm=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs"
		-cp "$home/lib/*")
	if [[ ! -f $dir/data/meta.properties ]]; then
		local cluster_id
		cluster_id=$("$java" "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>>"$(log_file kafka)") ||
			fail_with_log kafka "StorageTool random-uuid failed"
		"$java" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
			>>"$(log_file kafka)" 2>&1 || fail_with_log kafka "StorageTool format failed"
	fi
	spawn kafka "$java" "${jvm[@]}" kafka.Kafka "$dir/server.properties"
}

# ---------------------------------------------------------------------------------------
# Cassandra 5.0 on Java 17, heap capped at 1 GiB.
# ---------------------------------------------------------------------------------------

start_cassandra() {
	local home=$CACHE_DIR/cassandra-$CASSANDRA_VERSION dir
	dir=$(svc_dir cassandra)
	local java
	java=$(java17) || die "cassandra: Java 17 not found (run: stack/stack.sh install)"
	mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc_raw,logs}
	cat >"$dir/cassandra.yaml" <<EOF
cluster_name: tributary
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
num_tokens: 1
initial_token: 0
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true
listen_address: $HOST
rpc_address: $HOST
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
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
	local jamm
	jamm=$(ls "$home"/lib/jamm-*.jar 2>/dev/null | head -n 1)
	[[ -n $jamm ]] || die "cassandra: jamm agent jar missing from $home/lib"
	# Module flags from Cassandra's conf/jvm17-server.options: without them the JVM dies
	# during start-up on Java 17.
	local modules=(
		--add-exports java.base/jdk.internal.misc=ALL-UNNAMED
		--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
		--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
		--add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
		--add-exports java.sql/java.sql=ALL-UNNAMED
		--add-exports java.base/java.lang.ref=ALL-UNNAMED
		--add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
		--add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
		--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
		--add-opens java.base/java.lang.module=ALL-UNNAMED
		--add-opens java.base/jdk.internal.loader=ALL-UNNAMED
		--add-opens java.base/jdk.internal.ref=ALL-UNNAMED
		--add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
		--add-opens java.base/jdk.internal.math=ALL-UNNAMED
		--add-opens java.base/jdk.internal.module=ALL-UNNAMED
		--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
		--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED
		--add-opens java.base/java.io=ALL-UNNAMED
		--add-opens java.base/java.lang.reflect=ALL-UNNAMED
		--add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
		--add-opens java.base/java.lang=ALL-UNNAMED
		--add-opens java.base/java.util=ALL-UNNAMED
	)
	local jvm=(-Xms1g -Xmx1g -Xss256k -XX:+UseG1GC -XX:MaxGCPauseMillis=300
		-XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$dir/logs"
		-Djdk.attach.allowAttachSelf=true -Djava.net.preferIPv4Stack=true
		-Dio.netty.tryReflectionSetAccessible=true
		"${modules[@]}" -javaagent:"$jamm"
		-Dcassandra.config="file://$dir/cassandra.yaml"
		-Dcassandra-foreground=yes
		-Dcassandra.storagedir="$dir/data"
		-Dcassandra.logdir="$dir/logs"
		-Dlogback.configurationFile="$dir/logback.xml"
		-Dcassandra.skip_wait_for_gossip_to_settle=0
		-cp "$home/lib/*")
	spawn cassandra "$java" "${jvm[@]}" org.apache.cassandra.service.CassandraDaemon
}

# ---------------------------------------------------------------------------------------
# Jaeger v2 all-in-one, in-memory storage; Toxiproxy.
# ---------------------------------------------------------------------------------------

start_jaeger() {
	local dir
	dir=$(svc_dir jaeger)
	cat >"$dir/jaeger.yaml" <<EOF
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: $HOST:$JAEGER_HEALTH_PORT
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: $HOST:$JAEGER_QUERY_PORT
    grpc:
      endpoint: $HOST:$((JAEGER_QUERY_PORT - 1))
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $HOST:$JAEGER_OTLP_GRPC_PORT
      http:
        endpoint: $HOST:$JAEGER_OTLP_HTTP_PORT
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
	spawn jaeger "$CACHE_DIR/bin/jaeger-$JAEGER_VERSION" --config "$dir/jaeger.yaml"
}

start_toxiproxy() {
	spawn toxiproxy "$CACHE_DIR/bin/toxiproxy-server-$TOXIPROXY_VERSION" -host "$HOST" -port "$TOXIPROXY_PORT"
}

# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------

known_service() {
	local s
	for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
	die "unknown service '$1' (known: ${SERVICES[*]})"
}

start_one() {
	local name=$1
	mkdir -p "$(svc_dir "$name")"
	if svc_pid "$name" >/dev/null; then
		wait_ready "$name"
		return
	fi
	local answer
	if answer=$(probe "$name") && [[ -n $answer ]]; then
		# Another checkout's stack (or a system service) already answers on this port:
		# use it rather than fail on a port conflict.
		printf '%-10s up    %s  [%s, not started by this checkout]\n' "$name" "$(address "$name")" "$answer"
		return
	fi
	"start_$name"
	wait_ready "$name"
}

stop_one() {
	local name=$1 signal=${2:-TERM} pid
	pid=$(svc_pid "$name") || {
		rm -f "$(pid_file "$name")"
		return 0
	}
	kill -"$signal" -- "-$pid" 2>/dev/null || kill -"$signal" "$pid" 2>/dev/null || true
	local started=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - started >= STOP_DEADLINE_S)); then
			log "$name did not stop within ${STOP_DEADLINE_S}s after SIG$signal: SIGKILL"
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	rm -f "$(pid_file "$name")"
}

cmd_up() {
	cmd_install
	mkdir -p "$STACK_DIR"
	local s
	for s in "${SERVICES[@]}"; do start_one "$s"; done
}

# The signal that asks each service for a prompt clean shutdown.
stop_signal() {
	case $1 in
	postgres) echo INT ;; # SIGTERM is PostgreSQL's "smart" mode, which waits for clients
	*) echo TERM ;;
	esac
}

cmd_down() {
	local i
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		stop_one "${SERVICES[$i]}" "$(stop_signal "${SERVICES[$i]}")"
		printf '%-10s down\n' "${SERVICES[$i]}"
	done
}

cmd_status() {
	local s answer all_up=0
	for s in "${SERVICES[@]}"; do
		if answer=$(probe "$s") && [[ -n $answer ]]; then
			printf '%-10s up    %s  [%s]\n' "$s" "$(address "$s")" "$answer"
		else
			printf '%-10s down  %s\n' "$s" "$(address "$s")"
			all_up=1
		fi
	done
	return $all_up
}

cmd_env() {
	cat <<EOF
export TRIBUTARY__POSTGRES__HOST=$HOST
export TRIBUTARY__POSTGRES__PORT=$PG_PORT
export TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export TRIBUTARY__CASSANDRA__CONTACT_POINTS=$HOST:$CASSANDRA_PORT
export TRIBUTARY__TELEMETRY__OTLP_ENDPOINT=http://$HOST:$JAEGER_OTLP_HTTP_PORT
export TRIBUTARY_STACK_JAEGER_QUERY_URL=http://$HOST:$JAEGER_QUERY_PORT
export TRIBUTARY_STACK_TOXIPROXY_URL=http://$HOST:$TOXIPROXY_PORT
EOF
}

main() {
	local cmd=${1:-}
	case $cmd in
	install) cmd_install ;;
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	env) cmd_env ;;
	start)
		known_service "${2:-}"
		start_one "$2"
		;;
	stop)
		known_service "${2:-}"
		stop_one "$2" "$(stop_signal "$2")"
		;;
	kill)
		known_service "${2:-}"
		stop_one "$2" KILL
		;;
	pause | resume)
		known_service "${2:-}"
		local pid signal=STOP
		[[ $cmd == resume ]] && signal=CONT
		pid=$(svc_pid "$2") || die "$2 is not running"
		kill -"$signal" -- "-$pid" 2>/dev/null || kill -"$signal" "$pid"
		;;
	*)
		sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 2
		;;
	esac
}

main "$@"
