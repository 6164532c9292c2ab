# shellcheck shell=bash
# Jaeger v2 all-in-one with in-memory storage, and Toxiproxy: single Go binaries built
# by install.sh, on the ports the profile sets.

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

probe_jaeger() {
	curl -fsS -m 2 "http://$HOST:$JAEGER_HEALTH_PORT/status" >/dev/null 2>&1 &&
		curl -fsS -m 2 "http://$HOST:$JAEGER_QUERY_PORT/api/services" >/dev/null 2>&1 && echo "jaeger $JAEGER_VERSION"
}

probe_toxiproxy() {
	curl -fsS -m 2 "http://$HOST:$TOXIPROXY_PORT/version" 2>/dev/null | head -c 60 | sed 's/^/toxiproxy /'
}
