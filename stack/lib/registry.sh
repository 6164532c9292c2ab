# shellcheck shell=bash
# Apicurio Registry, the stack's Confluent-compatible schema registry (its API at
# /apis/ccompat/v7): the release archive from Maven Central, run with a Java 21 or newer
# (its application classes are Java 21; Kafka and Cassandra stay on Java 17). Storage is
# an H2 database in a file under the service's directory, so schemas and their ids
# outlive a restart, as the records in Kafka that name those ids do.

# A JDK of at least Java 21: $JAVA21_HOME if set, else the newest under /usr/lib/jvm.
java21() {
	local home version best="" best_major=0 major
	if [[ -n ${JAVA21_HOME:-} ]]; then
		[[ -x $JAVA21_HOME/bin/java ]] || return 1
		echo "$JAVA21_HOME/bin/java"
		return 0
	fi
	for home in /usr/lib/jvm/*; do
		[[ -n $home && -x $home/bin/java && -f $home/release ]] || continue
		version=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
		major=${version:-0}
		if ((major >= 21 && major > best_major)); then
			best=$home best_major=$major
		fi
	done
	[[ -n $best ]] || return 1
	echo "$best/bin/java"
}

registry_home() { echo "$CACHE_DIR/apicurio-registry-$REGISTRY_VERSION"; }

install_registry() {
	local home archive
	home=$(registry_home)
	[[ -f $home/.complete ]] && return 0
	java21 >/dev/null || die "registry: Apicurio Registry $REGISTRY_VERSION needs Java 21 or newer, and none was found (set JAVA21_HOME, or install a JDK 21+ under /usr/lib/jvm)"
	log "downloading Apicurio Registry $REGISTRY_VERSION from Maven Central into $home"
	rm -rf "$home" "$home.download"
	mkdir -p "$home.download"
	mvn -B -q -Dstyle.color=never \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
		-Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
		-DoutputDirectory="$home.download" ||
		die "registry: maven could not download io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all"
	archive=$home.download/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz
	mkdir -p "$home"
	tar -xzf "$archive" -C "$home" || die "registry: cannot unpack $archive"
	rm -rf "$home.download"
	[[ -f $home/quarkus-run.jar ]] || die "registry: $archive holds no quarkus-run.jar"
	touch "$home/.complete"
}

start_registry() {
	local java dir
	java=$(java21) || die "registry: Java 21 or newer not found (run: stack/stack.sh install)"
	dir=$(svc_dir registry)
	mkdir -p "$dir/db"
	# Quarkus serves health on a management port of its own (default 9000: set here).
	spawn registry "$java" -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dquarkus.http.host="$HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
		-Dquarkus.management.host="$HOST" -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
		-Dapicurio.datasource.url="jdbc:h2:file:$dir/db/registry" \
		-jar "$(registry_home)/quarkus-run.jar"
}

probe_registry() {
	curl -fsS -m 2 "http://$HOST:$REGISTRY_MANAGEMENT_PORT/health/ready" >/dev/null 2>&1 &&
		curl -fsS -m 2 "http://$HOST:$REGISTRY_PORT/apis/ccompat/v7/subjects" >/dev/null 2>&1 &&
		echo "apicurio-registry $REGISTRY_VERSION"
}
