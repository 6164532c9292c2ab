# shellcheck shell=bash
# Installation of everything a stack runs, once: Debian packages, the Kafka and Cassandra
# classpaths resolved from Maven Central, Apicurio Registry's release archive from there
# (the single stack's), Jaeger and Toxiproxy built with the Go toolchain. Downloads and builds are cached under $CACHE_DIR.

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
	command -v openssl >/dev/null || missing+=(openssl) # the stack's TLS material
	command -v cmake >/dev/null || missing+=(cmake) # rdkafka's bundled librdkafka build
	# librdkafka 2.12 includes <curl/curl.h> even when built without curl (it tests
	# WITH_OAUTHBEARER_OIDC with #ifdef, and cmake defines it as 0): the headers must exist.
	[[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ||
		-f /usr/include/aarch64-linux-gnu/curl/curl.h ]] || missing+=(libcurl4-openssl-dev)
	command -v g++ >/dev/null || missing+=(g++)
	# librdkafka's TLS and SCRAM link the system OpenSSL (rdkafka's ssl feature).
	[[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	command -v make >/dev/null || missing+=(make)
	command -v runuser >/dev/null || missing+=(util-linux)
	# The cluster's network partitions are iptables rules (lib/partition.sh).
	if [[ $STACK == cluster ]] && ! command -v iptables >/dev/null; then missing+=(iptables); fi
	apt_install "${missing[@]}"
	# Debian's postgresql package creates and starts a default cluster on 5432; ours is
	# a separate throwaway cluster, the default one is left alone.
}

# What only the test suite needs (`stack.sh install-test-tools`, from `make test` and
# the chaos targets): the dashboard test drives Debian's headless Chromium, and the
# chaos suite keeps every thread's stack (gdb) of a tributary that stopped draining.
install_test_tools() {
	local missing=()
	command -v chromium >/dev/null || missing+=(chromium)
	command -v gdb >/dev/null || missing+=(gdb)
	apt_install "${missing[@]}"
}

# Installs the Debian packages named, if any (as root; otherwise says how).
apt_install() {
	(($# == 0)) && return 0
	if [[ $(id -u) != 0 ]]; then
		die "missing packages: $* (install them with: sudo apt-get install -y $*)"
	fi
	log "installing Debian packages: $*"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# cqlsh $1 from PyPI into its own virtualenv under the cache (`make cqlsh`).
install_cqlsh() {
	local version=${1:?install-cqlsh VERSION} venv
	venv=$CACHE_DIR/cqlsh-$version
	[[ -x $venv/bin/cqlsh ]] && return 0
	# Debian splits venv's pip bootstrap out of python3.
	python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
	log "installing cqlsh $version from PyPI into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv" || die "python3 -m venv $venv failed"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "cqlsh==$version" ||
		{ rm -rf "$venv"; die "pip could not install cqlsh==$version from PyPI"; }
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
	if [[ " ${SERVICES[*]} " == *" registry "* ]]; then install_registry; fi
	install_toxiproxy
	install_jaeger
}
