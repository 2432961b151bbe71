// franz-go: creates a topic with kadm, produces N records with kgo, consumes them in a consumer
// group, commits, and reads the committed offsets back with kadm. Prints a JSON summary.
package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"gregor/interop"
)

func main() {
	o := interop.ParseOptions()
	start := time.Now()
	s := &interop.Summary{Client: "franz-go", Topic: o.Topic, Group: o.Group, InOrder: true}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	err := run(ctx, o, s)
	s.Finish(start, o.Records, err)
}

func run(ctx context.Context, o interop.Options, s *interop.Summary) error {
	prod, err := kgo.NewClient(kgo.SeedBrokers(o.Bootstrap), kgo.DefaultProduceTopic(o.Topic))
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer prod.Close()
	adm := kadm.NewClient(prod)

	created, err := adm.CreateTopics(ctx, int32(o.Partitions), 1, nil, o.Topic)
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	for _, t := range created {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, t.Err)
		}
	}
	s.Steps = append(s.Steps, "create topic")

	var produced atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < o.Records; i++ {
		rec := &kgo.Record{Key: []byte(interop.Key(i)), Value: []byte(interop.Value(i))}
		prod.Produce(ctx, rec, func(_ *kgo.Record, perr error) {
			if perr == nil {
				produced.Add(1)
			} else {
				firstErr.CompareAndSwap(nil, perr.Error())
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	s.Produced = int(produced.Load())
	if e, ok := firstErr.Load().(string); ok {
		return fmt.Errorf("produce: %s", e)
	}
	s.Steps = append(s.Steps, "produce")

	cons, err := kgo.NewClient(
		kgo.SeedBrokers(o.Bootstrap),
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return fmt.Errorf("consumer client: %w", err)
	}
	defer cons.Close()
	seen := make(map[string]bool, o.Records)
	last := map[int32]int64{}
	for len(seen) < o.Records {
		fetches := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consume: %d of %d records before the deadline", len(seen), o.Records)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, e error) {
			ferr = fmt.Errorf("fetch %s/%d: %w", t, p, e)
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				s.InOrder = false
			}
			last[r.Partition] = r.Offset
			seen[string(r.Key)+"="+string(r.Value)] = true
		})
	}
	s.Consumed = len(seen)
	for i := 0; i < o.Records; i++ {
		if !seen[interop.Key(i)+"="+interop.Value(i)] {
			return fmt.Errorf("record %d (%s) never consumed", i, interop.Key(i))
		}
	}
	s.Steps = append(s.Steps, "consume in group")

	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.Steps = append(s.Steps, "commit")

	offsets, err := adm.FetchOffsets(ctx, o.Group)
	if err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	if err := offsets.Error(); err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	offsets.Each(func(r kadm.OffsetResponse) {
		if r.Topic == o.Topic {
			s.Committed += r.At
		}
	})
	s.Steps = append(s.Steps, "fetch committed offsets")
	return nil
}
