#!/usr/bin/env bash
# The local stack without Docker: real Apache Kafka (KRaft), Apache Cassandra 5.0,
# PostgreSQL, Apicurio Registry, Jaeger v2 and Toxiproxy as local processes.
#
#   stack/stack.sh install   install what is missing (apt packages, Maven downloads, Go builds)
#   stack/stack.sh install-test-tools   what only the tests use (Chromium, gdb)
#   stack/stack.sh install-cqlsh VERSION   cqlsh from PyPI in a virtualenv (make cqlsh)
#   stack/stack.sh up        install, then start every service one after another and wait
#                            until each answers a real readiness probe
#   stack/stack.sh down      stop every service (SIGTERM, then SIGKILL after a deadline)
#   stack/stack.sh status    one line per service: up or down, with its address
#   stack/stack.sh env       the TRIBUTARY__* variables that point tributary at this stack
#   stack/stack.sh start|stop|kill|pause|resume SERVICE   one service (the chaos suite)
#   stack/stack.sh who|partition|heal|node-cgroup …       the cluster's (profiles/cluster.sh)
#
# TRIBUTARY_STACK picks the profile (stack/profiles/*.sh): `single` (the default; one
# node of each, what `make test` uses), `cluster` (three Kafka brokers and three
# Cassandra nodes on 127.0.0.1-3) or `containers` (docker-compose.yml run by docker
# compose on podman, with images built here; `stack/stack.sh compose ARGS` drives it)
# or `secure` (TLS and passwords required by every store, tributary's role granted its
# own objects only). Each profile has its own ports and its own data directory, so they
# can run at once.
#
# Data and logs live under $TRIBUTARY_STACK_DIR (default: <repo>/.stack for single,
# <repo>/.stack/cluster, <repo>/.stack/containers, <repo>/.stack/secure). Downloads and built tools are
# cached under $TRIBUTARY_CACHE_DIR (default: ~/.cache/tributary): a warm start does no
# network work. Every port can be overridden from the environment (see the profile).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${TRIBUTARY_CACHE_DIR:-$HOME/.cache/tributary}
STACK=${TRIBUTARY_STACK:-single}

KAFKA_VERSION=4.1.1
CASSANDRA_VERSION=5.0.6
JAEGER_VERSION=v1.76.0 # the v1 tag of the Jaeger v2.13.0 release (see STACK.md)
TOXIPROXY_VERSION=v2.12.0
REGISTRY_VERSION=3.3.3 # Apicurio Registry (io.apicurio:apicurio-registry-app), Java 21+

# Deadlines for readiness, in seconds. Cassandra's first boot on 2 cores is the slowest.
READY_DEADLINE_S=${TRIBUTARY_STACK_READY_DEADLINE_S:-180}
STOP_DEADLINE_S=${TRIBUTARY_STACK_STOP_DEADLINE_S:-30}

for lib in common install tls postgres kafka cassandra registry tools partition containers; do
	# shellcheck source=/dev/null
	source "$ROOT/stack/lib/$lib.sh"
done
[[ -f $ROOT/stack/profiles/$STACK.sh ]] ||
	die "unknown stack '$STACK' (TRIBUTARY_STACK): known are $(cd "$ROOT/stack/profiles" && ls ./*.sh | sed 's|^\./||; s|\.sh$||' | tr '\n' ' ')"
# shellcheck source=/dev/null
source "$ROOT/stack/profiles/$STACK.sh"

cmd_up() {
	cmd_install
	mkdir -p "$STACK_DIR"
	service_up
}

cmd_down() {
	local i
	# A partition left in place would cut the next start's nodes off.
	if declare -F service_down >/dev/null; then service_down; fi
	# SIGTERM to every service first, then wait for each: a Kafka broker shuts down in a
	# controlled way only while a controller quorum stands, so the brokers go together.
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		signal_if_running "${SERVICES[$i]}" "$(stop_signal "${SERVICES[$i]}")"
	done
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		stop_one "${SERVICES[$i]}" "$(stop_signal "${SERVICES[$i]}")"
		printf '%-12s down\n' "${SERVICES[$i]}"
	done
	if declare -F service_stopped >/dev/null; then service_stopped; fi
}

cmd_status() {
	local s answer all_up=0
	for s in "${SERVICES[@]}"; do
		if answer=$(service_probe "$s") && [[ -n $answer ]]; then
			printf '%-12s up    %s  [%s]\n' "$s" "$(service_address "$s")" "$answer"
		else
			printf '%-12s down  %s\n' "$s" "$(service_address "$s")"
			all_up=1
		fi
	done
	if ((all_up == 0)) && declare -F service_formed >/dev/null; then
		service_formed || all_up=1
	fi
	return $all_up
}

main() {
	local cmd=${1:-}
	case $cmd in
	install) cmd_install ;;
	install-test-tools) install_test_tools ;;
	install-cqlsh) install_cqlsh "${2:-}" ;;
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	env) service_env ;;
	start | stop | kill | pause | resume)
		known_service "${2:-}"
		# The container stack's stores run in containers, not as processes of ours.
		if [[ -n ${COMPOSE_SERVICES:-} && " ${COMPOSE_SERVICES[*]} " == *" $2 "* ]]; then
			die "$2 runs in a container: use stack/stack.sh compose $cmd $2 (compose's own verbs: kill -s SIGKILL, start, stop, pause, unpause)"
		fi
		;;&
	start)
		start_one "$2"
		;;
	stop)
		stop_one "$2" "$(stop_signal "$2")"
		;;
	kill)
		stop_one "$2" KILL
		;;
	pause)
		signal_one "$2" STOP
		;;
	resume)
		signal_one "$2" CONT
		;;
	*)
		# The profile's own commands (the cluster's `who`, `partition`, `heal`), called
		# plainly so that errexit holds inside them.
		if [[ -n $cmd && " ${PROFILE_COMMANDS[*]:-} " == *" $cmd "* ]]; then
			service_command "$@"
			exit 0
		fi
		sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 2
		;;
	esac
}

main "$@"
