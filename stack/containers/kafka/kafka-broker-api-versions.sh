#!/usr/bin/env bash
# Kafka's own tool (org.apache.kafka.tools.BrokerApiVersionsCommand), as the official
# image's script of the same name runs it; the compose file's health check calls it.
# A small client JVM: the check runs every few seconds on two cores.
exec java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
	-Dlog4j2.level=error -cp '/opt/kafka/libs/*' \
	org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
