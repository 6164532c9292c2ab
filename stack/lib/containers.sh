# shellcheck shell=bash
# The container stack's tools and images (profiles/containers.sh): podman with runc, the
# cgroupfs manager and explicit ulimits (what works on our machines, STACK.md), docker
# compose v2 built from the Go module proxy, and every image of docker-compose.yml built
# here, because no image registry is reachable:
#   localhost/tributary-base:bookworm   debootstrap's Debian bookworm plus the Debian
#                                       packages the services need and cqlsh from PyPI
#   localhost/tributary-kafka:4.1.1, -cassandra:5.0.6, -postgres:15, -jaeger:2.13.0
#                                       stand-ins for the official images, from the same
#                                       artifacts the process stack runs
#   localhost/tributary:local           the release binary cargo built on this host
# The base's root filesystem is cached as a tarball under $CACHE_DIR/containers.

COMPOSE_VERSION=v2.40.3
BASE_IMAGE=localhost/tributary-base:bookworm
# The Debian packages the stand-ins run: Java for Kafka and Cassandra, PostgreSQL,
# Python for cqlsh, wget for Jaeger's health check, ip and setpriv for the entrypoints.
BASE_PACKAGES=openjdk-17-jre-headless,postgresql-15,python3,python3-venv,wget,procps,iproute2,ca-certificates,util-linux
CQLSH_VERSION=6.2.2

containers_conf() { echo "$CACHE_DIR/containers/containers.conf"; }
storage_conf() { echo "$CACHE_DIR/containers/storage.conf"; }

# podman as this stack runs it: the API service, the health driver and this script
# share the configuration and the image store.
pod() { with_podman_config podman "$@"; }
with_podman_config() { CONTAINERS_CONF=$(containers_conf) CONTAINERS_STORAGE_CONF=$(storage_conf) "$@"; }

install_container_tools() {
	local missing=()
	command -v podman >/dev/null || missing+=(podman)
	command -v runc >/dev/null || missing+=(runc)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v iptables >/dev/null || missing+=(iptables) # netavark shells out to it
	[[ -x /usr/lib/podman/netavark ]] || missing+=(netavark aardvark-dns)
	command -v curl >/dev/null || missing+=(curl)
	# The chaos suite's compose backend drives pauses, partitions and inspections with
	# the docker CLI (against podman's API); Debian bookworm packages it only with
	# the engine.
	command -v docker >/dev/null ||
		die "the docker CLI is required (only the client: it talks to podman's API); e.g. the static client from download.docker.com"
	if ((${#missing[@]} > 0)); then
		[[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
		log "installing Debian packages: ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	mkdir -p "$(dirname "$(containers_conf)")"
	# crun fails on these hosts, there is no systemd to manage cgroups, and runc refuses
	# to start a container without explicit limits ("error setting rlimit"). The network
	# backend is named: podman picks CNI (not installed) for a store that holds images.
	cat >"$(containers_conf)" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=16384:16384"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
	# The image store in the cache: the base image and the built ones survive a fresh
	# checkout, and a warm start builds nothing it has.
	cat >"$(storage_conf)" <<CONF
[storage]
driver = "overlay"
graphroot = "$CACHE_DIR/containers/storage"
runroot = "/run/tributary-containers"
CONF
}

# docker compose v2, built once in a scratch module: a plain `go install …@version`
# refuses the module's exclude directives, and two of its test dependencies' versions
# are not served by the proxy. `go get` names the command's package, so that go.sum
# gets the entries of everything it imports.
install_compose() {
	local bin=$CACHE_DIR/bin/docker-compose-$COMPOSE_VERSION
	[[ -x $bin ]] && return 0
	command -v go >/dev/null || die "docker compose: the Go toolchain is required to build it"
	local build=$CACHE_DIR/build/compose started=$SECONDS
	log "building docker compose $COMPOSE_VERSION with the Go toolchain (about 5 minutes on 2 cores, once)"
	rm -rf "$build"
	mkdir -p "$build" "$CACHE_DIR/bin"
	(
		cd "$build" &&
			go mod init tributary-compose-build &&
			go mod edit \
				-exclude=github.com/davecgh/go-spew@v1.1.2-0.20180830191138-d8f796af33cc \
				-exclude=github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2 &&
			go get "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION" &&
			go build -o "$bin.tmp" github.com/docker/compose/v2/cmd
	) >"$CACHE_DIR/build/compose.log" 2>&1 || {
		tail -n 20 "$CACHE_DIR/build/compose.log" >&2
		die "docker compose: build failed (log: $CACHE_DIR/build/compose.log)"
	}
	mv "$bin.tmp" "$bin"
	log "docker compose $COMPOSE_VERSION built in $((SECONDS - started)) s"
}

compose_bin() { echo "$CACHE_DIR/bin/docker-compose-$COMPOSE_VERSION"; }

# The base image: Debian bookworm from debootstrap, the packages installed in a chroot
# (not in a build container: podman's build API ignores containers.conf's ulimits), no
# default PostgreSQL cluster, cqlsh from PyPI in a virtualenv on PATH. Cached as a
# tarball, imported when podman does not have it.
build_base_image() {
	pod image exists "$BASE_IMAGE" && return 0
	local started=$SECONDS tarball=$CACHE_DIR/containers/tributary-base-bookworm.tar
	if [[ ! -s $tarball ]]; then
		local root=$CACHE_DIR/containers/rootfs
		local mirror
		mirror=$(debian_mirror)
		# An interrupted earlier build may have left /proc mounted in it.
		mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
		log "building the base image: debootstrap bookworm from $mirror, then $BASE_PACKAGES (a few minutes, once)"
		rm -rf --one-file-system "$root"
		debootstrap --variant=minbase bookworm "$root" "$mirror" >"$CACHE_DIR/containers/debootstrap.log" 2>&1 ||
			die "debootstrap failed (log: $CACHE_DIR/containers/debootstrap.log)"
		mkdir -p "$root/etc/postgresql-common/createcluster.d"
		echo "create_main_cluster = false" >"$root/etc/postgresql-common/createcluster.d/tributary.conf"
		cp /etc/resolv.conf "$root/etc/resolv.conf"
		# This host's certificate authorities (an egress proxy's among them) for pip,
		# during the build only: the image keeps Debian's own.
		cp /etc/ssl/certs/ca-certificates.crt "$root/tmp/host-ca.crt"
		mount -t proc proc "$root/proc"
		# shellcheck disable=SC2064 # $root is expanded now: it is local to this function
		trap "umount '$root/proc' 2>/dev/null" EXIT
		local status=0
		# A clean environment: this host's (PIP_CERT, PIP_FIND_LINKS, …) names its own
		# files, which the chroot does not have.
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$root" /bin/bash -c "
			set -e
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends ${BASE_PACKAGES//,/ }
			python3 -m venv /opt/cqlsh
			/opt/cqlsh/bin/pip install --quiet --no-cache-dir --cert /tmp/host-ca.crt cqlsh==$CQLSH_VERSION
			ln -s /opt/cqlsh/bin/cqlsh /usr/local/bin/cqlsh
			apt-get clean
			rm -rf /var/lib/apt/lists/*
		" >>"$CACHE_DIR/containers/debootstrap.log" 2>&1 || status=$?
		umount "$root/proc"
		trap - EXIT
		((status == 0)) || die "installing the base image's packages failed (log: $CACHE_DIR/containers/debootstrap.log)"
		: >"$root/etc/resolv.conf"
		rm -f "$root/tmp/host-ca.crt"
		tar -C "$root" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
	fi
	pod import "$tarball" "$BASE_IMAGE" >/dev/null || die "podman import of $tarball failed"
	log "base image $BASE_IMAGE ready in $((SECONDS - started)) s"
}

# The mirror apt uses on this machine (deb822 or one-line sources).
debian_mirror() {
	local uri
	uri=$(grep -h -m1 -E '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{ print $2 }')
	[[ -n $uri ]] || uri=$(grep -h -m1 -E '^deb .*debian/? bookworm' /etc/apt/sources.list 2>/dev/null | awk '{ print $2 }')
	echo "${uri:-http://deb.debian.org/debian}"
}

# Builds image $1 from stack/containers/$2/Dockerfile with the files listed after `--`
# (source=destination in the context) hard-linked or copied into a fresh context.
build_image() {
	local image=$1 dir=$2
	shift 3
	local context=$CACHE_DIR/containers/context-$dir item
	rm -rf "$context"
	mkdir -p "$context"
	cp -a "$ROOT/stack/containers/$dir/." "$context/"
	for item in "$@"; do
		cp -al "${item%%=*}" "$context/${item#*=}" 2>/dev/null || cp -a "${item%%=*}" "$context/${item#*=}"
	done
	pod build --pull=never --network host -q -t "$image" "$context" >/dev/null ||
		die "podman build of $image failed"
	rm -rf "$context"
}

build_images() {
	local tributary_bin=$ROOT/target/release/tributary
	[[ -x $tributary_bin ]] ||
		die "tributary's image needs the release binary: cargo build --release -p tributary"
	log "building the stack's images (stack/containers/*/Dockerfile)"
	local started=$SECONDS
	build_image localhost/tributary-kafka:$KAFKA_VERSION kafka -- \
		"$CACHE_DIR/kafka-$KAFKA_VERSION/lib=libs"
	build_image localhost/tributary-cassandra:$CASSANDRA_VERSION cassandra -- \
		"$CACHE_DIR/cassandra-$CASSANDRA_VERSION/lib=lib" \
		"$ROOT/stack/jvm/cassandra-jvm17.options=jvm17-server.options"
	build_image localhost/tributary-postgres:15 postgres --
	build_image localhost/tributary-jaeger:2.13.0 jaeger -- \
		"$CACHE_DIR/bin/jaeger-$JAEGER_VERSION=jaeger"
	build_image localhost/tributary:local tributary -- \
		"$tributary_bin=tributary" "$ROOT/config=config"
	log "images built in $((SECONDS - started)) s"
}
