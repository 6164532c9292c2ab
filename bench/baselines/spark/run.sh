#!/usr/bin/env bash
# Runs the Spark baseline job (users_to_cassandra.py) with pyspark 3.5 from PyPI and the
# Kafka, Avro and Cassandra connectors from Maven Central, all cached under
# ${TRIBUTARY_CACHE_DIR:-~/.cache/tributary}. Arguments are the job's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TRIBUTARY_CACHE_DIR:-$HOME/.cache/tributary}
venv=$cache/spark-venv
# 3.5.7: the newest 3.5 whose spark-sql-kafka-0-10 artifact is on Maven Central.
pyspark=3.5.7
if [[ ! -x $venv/bin/spark-submit ]] ||
	[[ $("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)' 2>/dev/null) != "$pyspark" ]]; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet "pyspark==$pyspark"
fi
version=$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')
# spark-submit looks for pyspark with whatever python3 is first on PATH: make it the venv's.
export PATH="$venv/bin:$PATH" PYSPARK_PYTHON="$venv/bin/python"
SPARK_HOME=$("$venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
for jvm in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64; do
	[[ -d $jvm ]] && export JAVA_HOME=$jvm && break
done
exec "$venv/bin/spark-submit" \
	--master 'local[2]' \
	--driver-memory 1g \
	--conf "spark.jars.ivySettings=$here/ivysettings.xml" \
	--driver-java-options "-Divy.cache.root=$cache/ivy" \
	--packages "org.apache.spark:spark-sql-kafka-0-10_2.12:$version,org.apache.spark:spark-avro_2.12:$version,com.datastax.spark:spark-cassandra-connector_2.12:3.5.1" \
	"$here/users_to_cassandra.py" "$@"
