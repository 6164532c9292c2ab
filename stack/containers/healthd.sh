#!/usr/bin/env bash
# Runs the containers' health checks, as podman's systemd timers would: Debian's podman
# 4.3 schedules health checks only through systemd, which our machines do not run, and
# then leaves every container "starting" for good (podman #19326; 4.4 gives up on them
# instead). Compose's `condition: service_healthy`, `up --wait` and the chaos suite's
# wait after a restart all read that status. Each running container's check runs at
# the interval its healthcheck declares; `podman healthcheck run` records the result
# and counts the retries as the timer would.
set -u

declare -A interval_s next_due
seconds() {
	# A Go duration as podman prints it (5s, 1m30s, 500ms) in whole seconds, at least 1.
	local d=$1 total=0 n unit
	while [[ $d =~ ^([0-9]+)(ms|h|m|s)(.*)$ ]]; do
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $unit in
		h) total=$((total + n * 3600)) ;;
		m) total=$((total + n * 60)) ;;
		s) total=$((total + n)) ;;
		esac
	done
	echo $((total > 0 ? total : 1))
}

while true; do
	now=$(date +%s)
	running=$(podman ps -q --no-trunc --filter status=running)
	# Forget containers that are gone (the chaos suite starts a new one per instance).
	for id in "${!interval_s[@]}"; do
		[[ $running == *"$id"* ]] || unset "interval_s[$id]" "next_due[$id]"
	done
	for id in $running; do
		if [[ -z ${interval_s[$id]:-} ]]; then
			declared=$(podman inspect -f '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Interval}}{{end}}' "$id" 2>/dev/null)
			if [[ -z $declared ]]; then
				interval_s[$id]=none
			else
				interval_s[$id]=$(seconds "$declared")
			fi
			next_due[$id]=$now
		fi
		[[ ${interval_s[$id]} == none ]] && continue
		if ((now >= next_due[$id])); then
			next_due[$id]=$((now + interval_s[$id]))
			podman healthcheck run "$id" >/dev/null 2>&1 &
		fi
	done
	sleep 1
done
