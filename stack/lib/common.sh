# shellcheck shell=bash
# Process bookkeeping shared by every stack profile: one directory per service under
# $STACK_DIR holding its pid file and log, started in its own session so that stop, kill
# and pause reach every child, and a readiness wait on the profile's real probe.
#
# A profile (stack/profiles/*.sh) provides: SERVICES, service_start, service_probe,
# service_address, and may provide service_spawned_ready (see start_one).

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
	printf '[stack] error: %s\n' "$*" >&2
	exit 1
}

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
# With SPAWN_CGROUP set (a cgroup directory), the command runs in that cgroup from its
# first instruction: a socket belongs to the cgroup it was created in.
spawn() {
	local name=$1
	shift
	local log
	log=$(log_file "$name")
	if [[ -n ${SPAWN_CGROUP:-} ]]; then
		# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
		setsid bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$SPAWN_CGROUP" "$@" >>"$log" 2>&1 </dev/null &
	else
		setsid "$@" >>"$log" 2>&1 </dev/null &
	fi
	echo $! >"$(pid_file "$name")"
}

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

# Ends the stack's command with `headline` and the tail of service $1's log.
die_with_log() {
	local name=$1 headline=$2
	printf '[stack] error: %s\n' "$headline" >&2
	printf '[stack] last lines of %s:\n' "$(log_file "$name")" >&2
	tail -n 30 "$(log_file "$name")" >&2 2>/dev/null || true
	exit 1
}

fail_with_log() { die_with_log "$1" "$1 failed to start: $2"; }

# Poll the probe until it answers, the process dies, or the deadline passes.
wait_ready() {
	local name=$1 started=$SECONDS answer
	while true; do
		if answer=$(service_probe "$name") && [[ -n $answer ]]; then
			printf '%-12s up    %s  [%s, ready in %ss]\n' "$name" "$(service_address "$name")" "$answer" "$((SECONDS - started))"
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

known_service() {
	local s
	for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
	die "unknown service '$1' in the $STACK stack (known: ${SERVICES[*]})"
}

# Start a service unless it runs, then wait until it is ready. With `--no-wait` the
# process is only spawned: a Kafka controller quorum cannot answer until a majority of
# its voters runs, so the cluster profile spawns every broker before it waits on any.
start_one() {
	local name=$1 wait=${2:-}
	mkdir -p "$(svc_dir "$name")"
	if svc_pid "$name" >/dev/null; then
		[[ $wait == --no-wait ]] || wait_ready "$name"
		return
	fi
	local answer
	if answer=$(service_probe "$name") && [[ -n $answer ]]; then
		# Another checkout's stack (or a system service) already answers on this port:
		# use it rather than fail on a port conflict.
		printf '%-12s up    %s  [%s, not started by this checkout]\n' "$name" "$(service_address "$name")" "$answer"
		return
	fi
	service_start "$name"
	[[ $wait == --no-wait ]] || wait_ready "$name"
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

# The signal that asks each service for a prompt clean shutdown.
stop_signal() {
	case $1 in
	postgres) echo INT ;; # SIGTERM is PostgreSQL's "smart" mode, which waits for clients
	*) echo TERM ;;
	esac
}

# Sends a signal to a service's process group if it runs (no wait).
signal_if_running() {
	local pid
	pid=$(svc_pid "$1") || return 0
	kill -"$2" -- "-$pid" 2>/dev/null || kill -"$2" "$pid" 2>/dev/null || true
}

signal_one() {
	local name=$1 signal=$2 pid
	pid=$(svc_pid "$name") || die "$name is not running"
	kill -"$signal" -- "-$pid" 2>/dev/null || kill -"$signal" "$pid"
}
