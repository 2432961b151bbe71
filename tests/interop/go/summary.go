package interop

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

// Options are the flags every interop program takes.
type Options struct {
	Bootstrap  string
	Topic      string
	Group      string
	Records    int
	Partitions int
	Timeout    time.Duration
}

// ParseOptions reads the common flags.
func ParseOptions() Options {
	var o Options
	flag.StringVar(&o.Bootstrap, "bootstrap-server", "127.0.0.1:9092", "host:port of a broker")
	flag.StringVar(&o.Topic, "topic", "interop", "topic to create, produce to and consume from")
	flag.StringVar(&o.Group, "group", "interop-group", "consumer group that consumes and commits")
	flag.IntVar(&o.Records, "records", 100, "records to produce and then consume")
	flag.IntVar(&o.Partitions, "partitions", 1, "partitions of the topic when it is created")
	flag.DurationVar(&o.Timeout, "timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	return o
}

// Summary is what each program prints as one JSON object on stdout.
type Summary struct {
	Client string `json:"client"`
	Topic  string `json:"topic"`
	Group  string `json:"group"`
	// Produced counts the records the broker acknowledged.
	Produced int `json:"produced"`
	// Consumed counts the distinct records the group consumer received.
	Consumed int `json:"consumed"`
	// InOrder is false when a partition delivered an offset lower than one it delivered before.
	InOrder bool `json:"in_order"`
	// Committed is the sum over partitions of the offsets the group committed, as read back
	// from the broker with an admin call (OffsetFetch).
	Committed int64 `json:"committed"`
	// Steps lists what was done, in order, for a reader of a failure.
	Steps    []string `json:"steps"`
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	ElapsedS float64  `json:"elapsed_s"`
}

// Finish prints the summary and exits non-zero when err is not nil or the counts disagree.
func (s *Summary) Finish(start time.Time, want int, err error) {
	s.ElapsedS = time.Since(start).Seconds()
	if err == nil && (s.Produced != want || s.Consumed != want || s.Committed != int64(want)) {
		err = fmt.Errorf("produced %d, consumed %d, committed %d; want %d of each",
			s.Produced, s.Consumed, s.Committed, want)
	}
	if err != nil {
		s.Error = err.Error()
	}
	s.OK = err == nil
	printJSON(s, s.OK)
}

// printJSON prints v as one JSON line, then exits non-zero unless ok.
func printJSON(v any, ok bool) {
	out, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(string(out))
	if !ok {
		os.Exit(1)
	}
}

// Key and Value give record i's key and value, so that a consumer can check what it received.
func Key(i int) string   { return fmt.Sprintf("k-%d", i) }
func Value(i int) string { return fmt.Sprintf("v-%d", i) }
