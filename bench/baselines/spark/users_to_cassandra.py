"""The classic baseline: Spark Structured Streaming reads users.raw from Kafka and writes
the same columns tributary writes to Cassandra's created_users (the job of the
"Airflow -> Kafka -> Spark -> Cassandra" pipeline tributary replaces).

Reads the topic from the beginning with read_committed and stops when it has caught up
(trigger availableNow), so its throughput compares with tributary's on the same data.

Arguments: bootstrap_servers topic cassandra_host cassandra_port keyspace checkpoint_dir
"""

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

bootstrap, topic, host, port, keyspace, checkpoint = sys.argv[1:7]

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

u = raw.select(
    F.from_json(F.col("value").cast("string"), schema).alias("u"),
    "topic",
    "partition",
    "offset",
    "timestamp",
).select("u.*", "topic", "partition", "offset", "timestamp")

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
    F.col("location.postcode").alias("post_code"),
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
)


def write(batch, _epoch):
    (
        batch.write.format("org.apache.spark.sql.cassandra")
        .mode("append")
        .options(keyspace=keyspace, table="created_users")
        .save()
    )


query = rows.writeStream.foreachBatch(write).option("checkpointLocation", checkpoint).trigger(availableNow=True).start()
query.awaitTermination()
spark.stop()
