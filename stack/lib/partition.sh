# shellcheck shell=bash
# Network partitions on one machine. Every node of the cluster profile (its Kafka broker
# and its Cassandra node) runs in a cgroup of its own, and every node listens on its own
# loopback address. A partition of node N is three iptables rules in the OUTPUT chain,
# which every packet between local sockets crosses once:
#   1. node N's servers may answer (source port one of its listening ports), so a client
#      inside node N's cgroup — a tributary on the minority side — still talks to it;
#   2. anything else node N's processes send goes only to node N's own address;
#   3. nothing outside node N's cgroup reaches node N's address.
# Loopback connections take 127.0.0.1 as their source address whatever they connect
# to, so addresses alone cannot tell node N's outgoing traffic from anyone else's: the
# cgroup (xt_cgroup, matched on the sending socket) does.
# Known gap: rule 1 lets node N's servers answer anyone, so on a connection opened
# before the cut, replies node N already owed (and CQL events it pushes) still arrive,
# while nothing new reaches node N. Matching conntrack's original direction instead
# would close it.
PARTITION_CHAIN=TRIBUTARY-PARTITION

cgroup2_root() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

# The cgroup of node N, relative to the cgroup2 root (what `-m cgroup --path` takes).
node_cgroup() { echo "tributary-$STACK/node-$1"; }

# The directory of node N's cgroup, created if missing; empty without cgroup2.
node_cgroup_dir() {
	local root
	root=$(cgroup2_root)
	[[ -n $root && -w $root ]] || return 0
	mkdir -p "$root/$(node_cgroup "$1")" 2>/dev/null && echo "$root/$(node_cgroup "$1")"
}

partition_ready() {
	command -v iptables >/dev/null || die "partitions need iptables (run: stack/stack.sh install as root)"
	[[ $(id -u) == 0 ]] || die "partitions need root (iptables)"
	[[ -n $(cgroup2_root) ]] || die "partitions need a cgroup2 hierarchy (none mounted)"
	iptables -w -N "$PARTITION_CHAIN" 2>/dev/null || true
	iptables -w -C OUTPUT -j "$PARTITION_CHAIN" 2>/dev/null || iptables -w -I OUTPUT -j "$PARTITION_CHAIN"
}

# Cuts node $1 (address $2, listening on the comma-separated ports $3) off the rest.
partition_node() {
	local n=$1 host=$2 ports=$3 cgroup
	partition_ready
	cgroup=$(node_cgroup "$n")
	[[ -d $(cgroup2_root)/$cgroup ]] || die "node $n has no cgroup: start the stack with this checkout's stack.sh"
	# All three or none: half a partition is a different fault.
	iptables -w -A "$PARTITION_CHAIN" -m cgroup --path "$cgroup" -p tcp -m multiport --sports "$ports" -j RETURN &&
		iptables -w -A "$PARTITION_CHAIN" -m cgroup --path "$cgroup" ! -d "$host" -j DROP &&
		iptables -w -A "$PARTITION_CHAIN" -d "$host" -m cgroup ! --path "$cgroup" -j DROP || {
		partition_heal
		die "partition of node $n: iptables refused a rule (rules removed)"
	}
}

partition_heal() {
	command -v iptables >/dev/null || return 0
	iptables -w -F "$PARTITION_CHAIN" 2>/dev/null || true
}

# Removes the chain and the cgroups (at `down`).
partition_clear() {
	local root n
	if command -v iptables >/dev/null && iptables -w -L "$PARTITION_CHAIN" -n >/dev/null 2>&1; then
		iptables -w -F "$PARTITION_CHAIN"
		iptables -w -D OUTPUT -j "$PARTITION_CHAIN" 2>/dev/null || true
		iptables -w -X "$PARTITION_CHAIN" 2>/dev/null || true
	fi
	root=$(cgroup2_root)
	[[ -n $root && -d $root/tributary-$STACK ]] || return 0
	for n in "$root/tributary-$STACK"/node-*; do rmdir "$n" 2>/dev/null || true; done
	rmdir "$root/tributary-$STACK" 2>/dev/null || true
}
