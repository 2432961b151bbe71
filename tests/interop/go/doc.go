// Package interop holds the project's Go interop programs: each one drives a Kafka broker
// (gregor, or Apache Kafka for comparison) with one Go client library and prints a JSON summary
// on stdout. scripts/toolbox builds them into the toolbox's go/bin.
//
//	franz-go  github.com/twmb/franz-go (kgo, kadm)
//	sarama    github.com/IBM/sarama
//
// The programs per library: franz-go and sarama (produce, consume in a group, commit),
// matrix-franz-go and matrix-sarama (the client matrix's steps, matrix.go), eos-franz-go and
// eos-sarama (issue 12's exactly-once scenarios, eos.go).
package interop
