"""querybus: SQL over Apache Kafka."""
