-- W3C traceparent of the span that staged the run: the producer puts it (as the parent
-- of its Kafka span) into each record's headers, so one record's journey from fetch to
-- Cassandra is one trace. NULL when tracing is off or the run predates this column.
ALTER TABLE runs ADD COLUMN trace_parent TEXT;
