"""The classic baseline: Spark Structured Streaming reads users.raw from Kafka and writes
the same columns tributary writes to Cassandra's created_users (the job of the
"Airflow -> Kafka -> Spark -> Cassandra" pipeline tributary replaces).

Reads the topic from the beginning with read_committed and stops when it has caught up
(trigger availableNow), so its throughput compares with tributary's on the same data.

Records in Avro (kafka.record_format = "avro", the default) are read as any consumer of
the Kafka ecosystem reads them: every version of the subject "<topic>-value" is fetched
from the registry, each record's Confluent wire-format header (magic byte 0, the writer
schema's id) picks the version its datum is decoded with (Spark's from_avro), read into
the latest version's shape (the avroSchema option: Avro schema resolution). A record
whose header is not one of them fails its batch rather than be misread.

Arguments: bootstrap_servers topic cassandra_host cassandra_port keyspace checkpoint_dir
           [format (avro | json, default json) registry_url]
"""

import json
import sys
import urllib.request

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

bootstrap, topic, host, port, keyspace, checkpoint = sys.argv[1:7]
record_format = sys.argv[7] if len(sys.argv) > 7 else "json"
registry = sys.argv[8] if len(sys.argv) > 8 else ""

spark = (
    SparkSession.builder.appName("users-to-cassandra")
    .config("spark.cassandra.connection.host", host)
    .config("spark.cassandra.connection.port", port)
    .config("spark.sql.shuffle.partitions", "6")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("WARN")


def struct(*names):
    return StructType([StructField(n, StringType()) for n in names])


schema = StructType(
    [
        StructField("gender", StringType()),
        StructField("name", struct("title", "first", "last")),
        StructField(
            "location",
            StructType(
                [
                    StructField("street", StructType([StructField("number", StringType()), StructField("name", StringType())])),
                    StructField("city", StringType()),
                    StructField("state", StringType()),
                    StructField("country", StringType()),
                    StructField("postcode", StringType()),
                ]
            ),
        ),
        StructField("email", StringType()),
        StructField("login", struct("uuid", "username")),
        StructField("dob", struct("date")),
        StructField("registered", struct("date")),
        StructField("phone", StringType()),
        StructField("picture", struct("medium")),
    ]
)

raw = (
    spark.readStream.format("kafka")
    .option("kafka.bootstrap.servers", bootstrap)
    .option("subscribe", topic)
    .option("startingOffsets", "earliest")
    .option("kafka.isolation.level", "read_committed")
    .load()
)

def registry_get(url, path):
    """One GET of a Confluent-compatible registry's API, as JSON."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}{path}",
        headers={"Accept": "application/vnd.schemaregistry.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def subject_schemas(url, subject):
    """Every schema of `subject` by id, and the latest one's text."""
    versions = sorted(registry_get(url, f"/subjects/{subject}/versions"))
    schemas = {}
    for version in versions:
        body = registry_get(url, f"/subjects/{subject}/versions/{version}")
        schemas[int(body["id"])] = body["schema"]
    latest = registry_get(url, f"/subjects/{subject}/versions/{versions[-1]}")["schema"]
    return schemas, latest


if record_format == "avro":
    from pyspark.sql.avro.functions import from_avro

    if not registry:
        sys.exit("users_to_cassandra.py: avro records need the registry URL (argument 8)")
    schemas, latest = subject_schemas(registry, f"{topic}-value")
    print(f"users_to_cassandra.py: reading {topic} with schema ids {sorted(schemas)} from {registry}", flush=True)
    # The wire format's header: magic byte 0, then the schema id, 4 bytes big-endian.
    magic = F.substring(F.col("value"), 1, 1) == F.lit(bytearray([0]))
    schema_id = F.conv(F.hex(F.substring(F.col("value"), 2, 4)), 16, 10).cast("long")
    datum = F.expr("substring(value, 6, length(value) - 5)")
    user = None
    for known, text in schemas.items():
        # Written with `text`, read as `latest`: every branch has the same type.
        branch = from_avro(datum, text, {"avroSchema": latest})
        is_it = magic & (schema_id == known)
        user = F.when(is_it, branch) if user is None else user.when(is_it, branch)
    framed = raw.withColumn("header_ok", magic & schema_id.isin(list(schemas)))
    decoded = framed.select(
        user.alias("u"),
        "header_ok",
        "topic",
        "partition",
        "offset",
        "timestamp",
    )
    # A record of another schema would be misread: it fails the batch instead (below).
    u = decoded.select("u.*", "header_ok", "topic", "partition", "offset", "timestamp")
    # Avro's union of long and string is a struct of both members in Spark.
    postcode = F.coalesce(
        F.col("location.postcode.member0").cast("string"),
        F.col("location.postcode.member1"),
    )
else:
    u = raw.select(
        F.from_json(F.col("value").cast("string"), schema).alias("u"),
        F.lit(True).alias("header_ok"),
        "topic",
        "partition",
        "offset",
        "timestamp",
    ).select("u.*", "header_ok", "topic", "partition", "offset", "timestamp")
    postcode = F.col("location.postcode")

rows = u.select(
    F.col("login.uuid").alias("id"),
    F.col("name.first").alias("first_name"),
    F.col("name.last").alias("last_name"),
    F.col("gender"),
    F.format_string(
        "%s %s, %s, %s, %s",
        F.col("location.street.number"),
        F.col("location.street.name"),
        F.col("location.city"),
        F.col("location.state"),
        F.col("location.country"),
    ).alias("address"),
    F.col("location.country").alias("country"),
    postcode.alias("post_code"),
    F.col("email"),
    F.col("login.username").alias("username"),
    F.to_timestamp(F.col("dob.date")).alias("dob"),
    F.to_timestamp(F.col("registered.date")).alias("registered_date"),
    F.col("phone"),
    F.col("picture.medium").alias("picture"),
    F.col("topic").alias("source_topic"),
    F.col("partition").alias("source_partition"),
    F.col("offset").alias("source_offset"),
    F.col("timestamp").alias("ingested_at"),
    F.col("header_ok"),
)


def write(batch, _epoch):
    refused = batch.filter(~F.col("header_ok")).count()
    if refused:
        raise RuntimeError(f"{refused} records are not in the Confluent wire format of the schema read")
    batch = batch.drop("header_ok")
    (
        batch.write.format("org.apache.spark.sql.cassandra")
        .mode("append")
        .options(keyspace=keyspace, table="created_users")
        .save()
    )


query = rows.writeStream.foreachBatch(write).option("checkpointLocation", checkpoint).trigger(availableNow=True).start()
query.awaitTermination()
spark.stop()
