//! Small async Kafka client over kafka-protocol.
