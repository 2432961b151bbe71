package interop

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The exactly-once programs (cmd/eos-franz-go, cmd/eos-sarama) take one subcommand per
// scenario of issue 12 and the same flags, and print one EosReport as a JSON line:
//
//	create      create -topic with -partitions
//	idempotent  produce -records values "<prefix>-<i>" in order to partition 0, idempotently
//	            with acks=all, writing the count acknowledged so far to -progress (a broker
//	            may be killed and restarted meanwhile: the client retries)
//	ctp         consume-transform-produce: seed -records values "in-<i>" into -input, then
//	            read them in transactions (-txn-id) that write "out-<value>" to -topic and
//	            send the input offsets for -group; every third transaction (1, 4, 7, ...)
//	            aborts and the input is read again from the committed offsets; the
//	            transaction that would finish the input aborts and the program stops there;
//	            -progress gets the number of transactions ended so far. With -idle (franz-go
//	            only) it stops once no input came for that long instead, aborting only as
//	            -abort-every says, so that several programs can share the group's input
//	fence       producer A begins a transaction and writes "<prefix>-a-<i>"; producer B with
//	            the same -txn-id starts, which fences A; A writes "<prefix>-a-after" and tries
//	            to commit (both must fail as fenced); B commits "<prefix>-b-<i>"
//	txn-open    begin a transaction, write -records values "<prefix>-<i>" (half of them when
//	            -resume is set), write "open" to -progress; with -resume, wait until that file
//	            exists, write the other half and commit; without it, exit leaving the
//	            transaction open. When the second half or the commit fails, the producer
//	            aborts and tries one more transaction of -records values "<prefix>-again-<i>"
//	txn-commit  a new producer with -txn-id commits -records values "<prefix>-<i>"
//	metadata    ask once for -topic's metadata with auto-creation allowed (as sarama's client
//	            does by default), reporting its partitions and error
//	read        write one record "end" to every partition of -topic (not transactional), then
//	            read every partition with -isolation until its "end" record, reporting the
//	            values before it; with -group, also the group's committed offsets
type EosArgs struct {
	Scenario   string
	Bootstrap  string
	Topic      string
	Input      string
	Group      string
	TxnID      string
	Prefix     string
	Records    int
	Partitions int
	// Isolation is read_committed or read_uncommitted.
	Isolation string
	// Progress is a file the program rewrites with how far it got (a count, or a word).
	Progress string
	// Resume is a file whose appearance lets txn-open finish its transaction.
	Resume string
	// TxnTimeout is the producer's transaction.timeout.ms.
	TxnTimeout time.Duration
	// BatchMax bounds the input records one ctp transaction processes.
	BatchMax int
	// AbortEvery makes ctp abort transactions 1, 1+n, 1+2n, ... (none when 0).
	AbortEvery int
	// Idle, when set, makes ctp stop once no input arrived for that long, and abort no last
	// transaction: several ctp programs then share one group's input.
	Idle time.Duration
	// Seed makes ctp write the input records first.
	Seed bool
	// GroupProtocol is the consumer group protocol ctp's group uses: classic, or consumer
	// (KIP-848, franz-go's ServerSideBalancer).
	GroupProtocol string
	// Pace is how long each ctp transaction stays open between writing its outputs and
	// sending its offsets (so that a broker kill lands in the middle of one).
	Pace    time.Duration
	Timeout time.Duration
}

// ParseEosArgs reads `SUBCOMMAND [-flag value ...]`, exiting with a message when they are wrong.
func ParseEosArgs() EosArgs {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: create|idempotent|ctp|fence|txn-open|txn-commit|metadata|read [flags]")
		os.Exit(2)
	}
	a := EosArgs{Scenario: os.Args[1]}
	fs := flag.NewFlagSet(a.Scenario, flag.ExitOnError)
	fs.StringVar(&a.Bootstrap, "bootstrap-server", "127.0.0.1:9092", "host:port of the seed brokers, comma-separated")
	fs.StringVar(&a.Topic, "topic", "eos", "the topic written (and read by read)")
	fs.StringVar(&a.Input, "input", "eos-input", "ctp's input topic")
	fs.StringVar(&a.Group, "group", "", "the consumer group whose offsets ctp sends and read reports")
	fs.StringVar(&a.TxnID, "txn-id", "eos-txn", "transactional id")
	fs.StringVar(&a.Prefix, "prefix", "v", "prefix of the values written")
	fs.IntVar(&a.Records, "records", 100, "records to write")
	fs.IntVar(&a.Partitions, "partitions", 1, "partitions of the topic(s)")
	fs.StringVar(&a.Isolation, "isolation", "read_committed", "read_committed or read_uncommitted")
	fs.StringVar(&a.Progress, "progress", "", "file to write progress to")
	fs.StringVar(&a.Resume, "resume", "", "file whose appearance lets txn-open commit")
	fs.DurationVar(&a.TxnTimeout, "txn-timeout", 60*time.Second, "transaction timeout")
	fs.IntVar(&a.BatchMax, "batch", 40, "most input records in one ctp transaction")
	fs.DurationVar(&a.Pace, "pace", 0, "pause inside each ctp transaction, after its writes")
	fs.IntVar(&a.AbortEvery, "abort-every", 3, "ctp aborts transactions 1, 1+n, ... (0: none)")
	fs.DurationVar(&a.Idle, "idle", 0, "ctp stops after no input for this long (shared runs)")
	fs.BoolVar(&a.Seed, "seed", true, "ctp writes the input records first")
	fs.StringVar(&a.GroupProtocol, "group-protocol", "classic", "classic or consumer (KIP-848)")
	fs.DurationVar(&a.Timeout, "timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	switch a.GroupProtocol {
	case "classic", "consumer":
	default:
		fmt.Fprintln(os.Stderr, "-group-protocol: classic or consumer")
		os.Exit(2)
	}
	switch a.Isolation {
	case "read_committed", "read_uncommitted":
	default:
		fmt.Fprintln(os.Stderr, "-isolation: read_committed or read_uncommitted")
		os.Exit(2)
	}
	return a
}

// Brokers are the seed brokers (-bootstrap-server is comma-separated, host:port each).
func (a EosArgs) Brokers() []string { return strings.Split(a.Bootstrap, ",") }

// ReadCommitted says whether read uses the read_committed isolation level.
func (a EosArgs) ReadCommitted() bool { return a.Isolation == "read_committed" }

// EosValue is the value of record i of a scenario.
func EosValue(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

// EndValue is the value of the record read writes to mark the end of each partition.
const EndValue = "end"

// WriteProgress replaces the progress file's contents (nothing when there is no file).
func (a EosArgs) WriteProgress(s string) {
	if a.Progress == "" {
		return
	}
	tmp := a.Progress + ".tmp"
	if os.WriteFile(tmp, []byte(s), 0o644) == nil {
		_ = os.Rename(tmp, a.Progress)
	}
}

// WaitResume waits for the resume file to appear, or the deadline.
func (a EosArgs) WaitResume(deadline time.Time) error {
	for time.Now().Before(deadline) {
		if _, err := os.Stat(a.Resume); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear in time", a.Resume)
}

// EosReport is the JSON line every subcommand prints.
type EosReport struct {
	Client   string `json:"client"`
	Version  string `json:"version"`
	Scenario string `json:"scenario"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	// Produced counts the records the broker acknowledged (all of them, in every transaction).
	Produced int `json:"produced"`

	// ctp: the inputs whose outputs were committed, the transactions ended each way, and the
	// input offsets (next offset to read, per partition) of the last committed transaction.
	CommittedInputs []string         `json:"committed_inputs,omitempty"`
	Commits         int              `json:"commits,omitempty"`
	Aborts          int              `json:"aborts,omitempty"`
	Offsets         map[string]int64 `json:"offsets,omitempty"`

	// fence and txn-open: what the client said.
	Fenced         bool   `json:"fenced"`
	AfterFenceErr  string `json:"after_fence_error,omitempty"`
	CommitErr      string `json:"commit_error,omitempty"`
	Committed      bool   `json:"committed"`
	ErrorsReturned int    `json:"errors_returned,omitempty"`
	// txn-open: after a transaction that failed, whether the same producer then committed
	// a new one ("<prefix>-again-<i>"), and what it said if not.
	Recovered  bool   `json:"recovered"`
	RecoverErr string `json:"recover_error,omitempty"`

	// read: each partition's values before its "end" record, in offset order, and the group's
	// committed offsets when a group was named.
	Values       map[string][]string `json:"values,omitempty"`
	GroupOffsets map[string]int64    `json:"group_offsets,omitempty"`

	// metadata: the topic's partitions and error, as the broker answered.
	Partitions int    `json:"partitions"`
	TopicError string `json:"topic_error,omitempty"`

	// Steps lists what was done, in order, for a reader of a failure.
	Steps    []string `json:"steps"`
	ElapsedS float64  `json:"elapsed_s"`
}

// Step records one step with the time since start.
func (r *EosReport) Step(start time.Time, format string, args ...any) {
	r.Steps = append(r.Steps, fmt.Sprintf("%.2fs ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
}

// Emit prints the report and exits non-zero when err is not nil.
func (r *EosReport) Emit(start time.Time, err error) {
	r.ElapsedS = time.Since(start).Seconds()
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	r.OK = r.Error == ""
	printJSON(r, r.OK)
}

// PartitionKey names partition p in the report's maps.
func PartitionKey(p int32) string { return strconv.Itoa(int(p)) }
