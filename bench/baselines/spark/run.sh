#!/usr/bin/env bash
# Runs the Spark baseline job (users_to_cassandra.py) with pyspark 3.5 from PyPI and the
# Kafka and Cassandra connectors from Maven Central, all cached under
# ${TRIBUTARY_CACHE_DIR:-~/.cache/tributary}. Arguments are the job's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TRIBUTARY_CACHE_DIR:-$HOME/.cache/tributary}
venv=$cache/spark-venv
if [[ ! -x $venv/bin/spark-submit ]]; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet "pyspark==3.5.*"
fi
version=$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')
for jvm in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64; do
	[[ -d $jvm ]] && export JAVA_HOME=$jvm && break
done
exec "$venv/bin/spark-submit" \
	--master 'local[2]' \
	--driver-memory 1g \
	--conf "spark.jars.ivy=$cache/ivy" \
	--packages "org.apache.spark:spark-sql-kafka-0-10_2.12:$version,com.datastax.spark:spark-cassandra-connector_2.12:3.5.1" \
	"$here/users_to_cassandra.py" "$@"
