# shellcheck shell=bash
# The container stack (STACK=containers): docker-compose.yml itself, run by docker
# compose v2 against podman, with images built here (stack/containers/, lib/containers.sh)
# put in place of the official ones by stack/containers/compose.local.yml. Kafka,
# Cassandra, PostgreSQL and Jaeger in containers on a compose network of fixed
# addresses; tributary's own image for the compose file's schema, source and tributary
# services and for the chaos suite's instances. Its own host ports, so that it can run
# beside the single and cluster stacks (on two cores, run one at a time).
#
# Two processes of this checkout keep it running: podman's Docker-compatible API
# service (compose and the docker CLI talk to it) and the health-check driver
# (containers/healthd.sh, because podman 4.3 needs systemd for that).

STACK_DIR=${TRIBUTARY_STACK_DIR:-$ROOT/.stack/containers}
HOST=127.0.0.1

# Host ports: compose.local.yml reads the same variables, with the same defaults.
export TRIBUTARY_CONTAINERS_PG_PORT=${TRIBUTARY_CONTAINERS_PG_PORT:-56432}
export TRIBUTARY_CONTAINERS_KAFKA_PORT=${TRIBUTARY_CONTAINERS_KAFKA_PORT:-49092}
export TRIBUTARY_CONTAINERS_CASSANDRA_PORT=${TRIBUTARY_CONTAINERS_CASSANDRA_PORT:-49042}
export TRIBUTARY_CONTAINERS_OTLP_GRPC_PORT=${TRIBUTARY_CONTAINERS_OTLP_GRPC_PORT:-44317}
export TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT=${TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT:-44318}
export TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT=${TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT:-46686}

COMPOSE_SERVICES=(kafka cassandra postgres jaeger)
SERVICES=(podman healthd "${COMPOSE_SERVICES[@]}")
PROFILE_COMMANDS=(compose)

podman_socket() { echo "$STACK_DIR/podman.sock"; }

# docker compose with both files, against this stack's podman.
compose() {
	DOCKER_HOST=unix://$(podman_socket) DOCKER_BUILDKIT=0 COMPOSE_BAKE=false \
		"$(compose_bin)" --project-directory "$ROOT" -p tributary \
		-f "$ROOT/docker-compose.yml" -f "$ROOT/stack/containers/compose.local.yml" "$@"
}

cmd_install() {
	install_packages
	install_kafka
	install_cassandra
	install_jaeger
	install_container_tools
	install_compose
	build_base_image
}

service_start() {
	case $1 in
	podman)
		rm -f "$(podman_socket)"
		with_podman_config spawn podman podman system service --time=0 "unix://$(podman_socket)"
		;;
	healthd) with_podman_config spawn healthd "$ROOT/stack/containers/healthd.sh" ;;
	*) die "$1 runs in a container: start it with \`stack/stack.sh compose start $1\`" ;;
	esac
}

service_address() {
	case $1 in
	podman) echo "unix://$(podman_socket) (Docker API)" ;;
	healthd) echo "runs the containers' health checks" ;;
	postgres) echo "postgresql://postgres@$HOST:$TRIBUTARY_CONTAINERS_PG_PORT/postgres" ;;
	kafka) echo "$HOST:$TRIBUTARY_CONTAINERS_KAFKA_PORT (kafka:9092 inside)" ;;
	cassandra) echo "$HOST:$TRIBUTARY_CONTAINERS_CASSANDRA_PORT (CQL; cassandra:9042 inside)" ;;
	jaeger) echo "OTLP http $HOST:$TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT, query API http://$HOST:$TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT/api/traces (this build has no web UI)" ;;
	esac
}

service_probe() {
	case $1 in
	podman) curl -sf --unix-socket "$(podman_socket)" http://d/_ping 2>/dev/null && echo " podman API" ;;
	healthd) svc_pid healthd >/dev/null && echo "pid $(svc_pid healthd)" ;;
	postgres)
		psql -X -q -t -A -h "$HOST" -p "$TRIBUTARY_CONTAINERS_PG_PORT" -U postgres -d postgres \
			-c 'SELECT version()' 2>/dev/null | cut -d' ' -f1,2
		;;
	kafka) python3 "$ROOT/stack/probe.py" kafka "$HOST" "$TRIBUTARY_CONTAINERS_KAFKA_PORT" 2>/dev/null ;;
	cassandra) python3 "$ROOT/stack/probe.py" cql "$HOST" "$TRIBUTARY_CONTAINERS_CASSANDRA_PORT" 2>/dev/null ;;
	jaeger)
		curl -sf "http://$HOST:$TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT/api/services" >/dev/null 2>&1 &&
			echo "query API"
		;;
	esac
}

service_up() {
	build_images
	start_one podman
	start_one healthd
	log "docker compose up: ${COMPOSE_SERVICES[*]} (waits until each is healthy)"
	compose up -d --wait --wait-timeout 300 "${COMPOSE_SERVICES[@]}" >"$STACK_DIR/compose-up.log" 2>&1 || {
		tail -n 30 "$STACK_DIR/compose-up.log" >&2
		die "docker compose up failed (log: $STACK_DIR/compose-up.log)"
	}
	local s
	for s in "${COMPOSE_SERVICES[@]}"; do wait_probe "$s"; done
}

# The health check says the container is healthy; the probe asks the same question
# from the host, through the published port.
wait_probe() {
	local name=$1 started=$SECONDS answer
	until answer=$(service_probe "$name") && [[ -n $answer ]]; do
		((SECONDS - started < READY_DEADLINE_S)) || die "$name: healthy in its container but not answering on the host"
		sleep 0.5
	done
	printf '%-12s up    %s  [%s]\n' "$name" "$(service_address "$name")" "$answer"
}

# Before the processes stop: every container of the project goes, with its data (the
# stores keep theirs in the containers' layers), and so does the network.
service_down() {
	if service_probe podman >/dev/null &&
		compose down --remove-orphans --timeout 30 >"$STACK_DIR/compose-down.log" 2>&1; then
		return 0
	fi
	# No API service or a failed `compose down`: the containers run under conmon, not
	# under our processes, and would keep their ports and addresses. podman removes
	# them by the project's label.
	log "docker compose down failed or podman's API is gone: removing the project's containers with podman"
	local ids
	ids=$(pod ps -a -q --filter label=com.docker.compose.project=tributary 2>/dev/null || true)
	# shellcheck disable=SC2086 # one word per container id
	[[ -z $ids ]] || pod rm -f -t 10 $ids >/dev/null 2>&1 || log "podman rm failed: $ids"
	pod network rm -f tributary_default >/dev/null 2>&1 || true
}

# `stack/stack.sh compose ARGS…`: docker compose on this stack (ps, logs, kill, …).
service_command() {
	shift
	compose "$@"
}

service_env() {
	cat <<ENV
export TRIBUTARY_CONTAINERS_PG_PORT=$TRIBUTARY_CONTAINERS_PG_PORT
export TRIBUTARY_CONTAINERS_KAFKA_PORT=$TRIBUTARY_CONTAINERS_KAFKA_PORT
export TRIBUTARY_CONTAINERS_CASSANDRA_PORT=$TRIBUTARY_CONTAINERS_CASSANDRA_PORT
export TRIBUTARY_CONTAINERS_OTLP_GRPC_PORT=$TRIBUTARY_CONTAINERS_OTLP_GRPC_PORT
export TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT=$TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT
export TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT=$TRIBUTARY_CONTAINERS_JAEGER_QUERY_PORT
export TRIBUTARY__POSTGRES__PORT=$TRIBUTARY_CONTAINERS_PG_PORT
export TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS=$HOST:$TRIBUTARY_CONTAINERS_KAFKA_PORT
export TRIBUTARY__CASSANDRA__CONTACT_POINTS=$HOST:$TRIBUTARY_CONTAINERS_CASSANDRA_PORT
export TRIBUTARY__TELEMETRY__OTLP_ENDPOINT=http://$HOST:$TRIBUTARY_CONTAINERS_OTLP_HTTP_PORT
export TRIBUTARY__KAFKA__RECORD_FORMAT=json
export DOCKER_HOST=unix://$(podman_socket)
export TRIBUTARY_COMPOSE="$(compose_bin) --project-directory $ROOT -p tributary -f $ROOT/docker-compose.yml -f $ROOT/stack/containers/compose.local.yml"
ENV
}
