# shellcheck shell=bash
# The single-node stack (STACK=single, the default): one PostgreSQL, one Kafka broker
# (combined with its controller), one Cassandra node, a schema registry (Apicurio,
# Confluent-compatible API), Jaeger and Toxiproxy, all on
# 127.0.0.1 — what `make test`, the chaos suite and the soak run against. Replication
# factor 1 everywhere: losing a node is an outage here, the cluster profile fails over.

HOST=127.0.0.1
STACK_DIR=${TRIBUTARY_STACK_DIR:-$ROOT/.stack}

PG_PORT=${TRIBUTARY_STACK_PG_PORT:-55432}
KAFKA_PORT=${TRIBUTARY_STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TRIBUTARY_STACK_KAFKA_CONTROLLER_PORT:-9093}
# A second Kafka listener that advertises a Toxiproxy address, so a client that
# bootstraps through the proxy keeps talking through it (the chaos suite's Kafka link).
KAFKA_PROXIED_PORT=${TRIBUTARY_STACK_KAFKA_PROXIED_PORT:-9094}
KAFKA_PROXY_PORT=${TRIBUTARY_STACK_KAFKA_PROXY_PORT:-29092}
# A TLS listener (the stack's server certificate), for clients with kafka.sslmode.
KAFKA_SSL_PORT=${TRIBUTARY_STACK_KAFKA_SSL_PORT:-9095}
CASSANDRA_PORT=${TRIBUTARY_STACK_CASSANDRA_PORT:-9042}
CASSANDRA_STORAGE_PORT=${TRIBUTARY_STACK_CASSANDRA_STORAGE_PORT:-7000}
JAEGER_OTLP_GRPC_PORT=${TRIBUTARY_STACK_JAEGER_OTLP_GRPC_PORT:-4317}
JAEGER_OTLP_HTTP_PORT=${TRIBUTARY_STACK_JAEGER_OTLP_HTTP_PORT:-4318}
JAEGER_QUERY_PORT=${TRIBUTARY_STACK_JAEGER_QUERY_PORT:-16686}
JAEGER_HEALTH_PORT=${TRIBUTARY_STACK_JAEGER_HEALTH_PORT:-13133}
TOXIPROXY_PORT=${TRIBUTARY_STACK_TOXIPROXY_PORT:-8474}
REGISTRY_PORT=${TRIBUTARY_STACK_REGISTRY_PORT:-18081}
REGISTRY_MANAGEMENT_PORT=${TRIBUTARY_STACK_REGISTRY_MANAGEMENT_PORT:-18082}

SERVICES=(postgres kafka cassandra registry jaeger toxiproxy)

service_start() {
	case $1 in
	postgres) start_postgres ;;
	kafka)
		KAFKA_NODE_ID=1 \
			KAFKA_VOTERS="1@$HOST:$KAFKA_CONTROLLER_PORT" \
			KAFKA_LISTENERS="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,PROXIED://$HOST:$KAFKA_PROXIED_PORT,SSL://$HOST:$KAFKA_SSL_PORT" \
			KAFKA_ADVERTISED="PLAINTEXT://$HOST:$KAFKA_PORT,PROXIED://$HOST:$KAFKA_PROXY_PORT,SSL://$HOST:$KAFKA_SSL_PORT" \
			KAFKA_PROTOCOLS=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT,SSL:SSL \
			KAFKA_RF=1 KAFKA_MIN_ISR=1 KAFKA_TLS=keystore \
			kafka_start kafka
		;;
	cassandra)
		CASSANDRA_HOST=$HOST CASSANDRA_PORT=$CASSANDRA_PORT \
			CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT \
			CASSANDRA_SEEDS="$HOST:$CASSANDRA_STORAGE_PORT" CASSANDRA_TOKEN=0 CASSANDRA_HEAP=1g \
			CASSANDRA_TLS=optional cassandra_start cassandra
		;;
	registry) start_registry ;;
	jaeger) start_jaeger ;;
	toxiproxy) start_toxiproxy ;;
	esac
}

service_address() {
	case $1 in
	postgres) echo "postgresql://postgres@$HOST:$PG_PORT/postgres" ;;
	kafka) echo "$HOST:$KAFKA_PORT (TLS $HOST:$KAFKA_SSL_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT)" ;;
	cassandra) echo "$HOST:$CASSANDRA_PORT (CQL)" ;;
	registry) echo "http://$HOST:$REGISTRY_PORT/apis/ccompat/v7 (Confluent-compatible API)" ;;
	jaeger) echo "OTLP grpc $HOST:$JAEGER_OTLP_GRPC_PORT, OTLP http $HOST:$JAEGER_OTLP_HTTP_PORT, query API http://$HOST:$JAEGER_QUERY_PORT/api/traces (this build has no web UI: README, The local stack)" ;;
	toxiproxy) echo "http://$HOST:$TOXIPROXY_PORT (API)" ;;
	esac
}

# The real readiness question for each service; prints a description on success.
service_probe() {
	case $1 in
	postgres) probe_postgres ;;
	kafka) python3 "$ROOT/stack/probe.py" kafka "$HOST" "$KAFKA_PORT" 2>/dev/null ;;
	cassandra) python3 "$ROOT/stack/probe.py" cql "$HOST" "$CASSANDRA_PORT" 2>/dev/null ;;
	registry) probe_registry ;;
	jaeger) probe_jaeger ;;
	toxiproxy) probe_toxiproxy ;;
	esac
}

service_up() {
	local s
	for s in "${SERVICES[@]}"; do start_one "$s"; done
}

service_env() {
	cat <<ENV
export TRIBUTARY__POSTGRES__HOST=$HOST
export TRIBUTARY__POSTGRES__PORT=$PG_PORT
export TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export TRIBUTARY__CASSANDRA__CONTACT_POINTS=$HOST:$CASSANDRA_PORT
export TRIBUTARY__KAFKA__REGISTRY__URL=http://$HOST:$REGISTRY_PORT/apis/ccompat/v7
export TRIBUTARY__TELEMETRY__OTLP_ENDPOINT=http://$HOST:$JAEGER_OTLP_HTTP_PORT
export TRIBUTARY_STACK_JAEGER_QUERY_URL=http://$HOST:$JAEGER_QUERY_PORT
export TRIBUTARY_STACK_TOXIPROXY_URL=http://$HOST:$TOXIPROXY_PORT
export TRIBUTARY_STACK_KAFKA_SSL_BOOTSTRAP=$HOST:$KAFKA_SSL_PORT
ENV
}
