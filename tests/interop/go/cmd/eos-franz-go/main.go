// eos-franz-go: issue 12's exactly-once scenarios with franz-go (kgo, kadm): the idempotent
// producer, consume-transform-produce with kgo.GroupTransactSession, fencing by a second
// producer with the same transactional id, and transactions left open across a broker kill.
// Subcommands, flags and output: interop.EosArgs and interop.EosReport.
package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"gregor/interop"
)

func main() {
	start := time.Now()
	a := interop.ParseEosArgs()
	r := &interop.EosReport{
		Client:   "franz-go",
		Version:  interop.ModuleVersion("github.com/twmb/franz-go"),
		Scenario: a.Scenario,
		Steps:    []string{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	r.Emit(start, run(ctx, start, a, r))
}

func run(ctx context.Context, start time.Time, a interop.EosArgs, r *interop.EosReport) error {
	step := func(format string, args ...any) { r.Step(start, format, args...) }
	switch a.Scenario {
	case "create":
		return create(ctx, a, a.Topic)
	case "idempotent":
		return idempotent(ctx, a, r, step)
	case "ctp":
		return ctp(ctx, a, r, step)
	case "fence":
		return fence(ctx, a, r, step)
	case "txn-open":
		return txnOpen(ctx, a, r, step)
	case "txn-commit":
		cl, err := txnClient(a)
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		if err := produceValues(ctx, cl, a.Topic, a.Prefix, 0, a.Records, r); err != nil {
			return err
		}
		step("produced %d records", a.Records)
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			r.CommitErr = err.Error()
			return fmt.Errorf("commit: %w", err)
		}
		r.Committed = true
		step("committed")
		return nil
	case "metadata":
		cl, err := kgo.NewClient(kgo.SeedBrokers(a.Brokers()...))
		if err != nil {
			return err
		}
		defer cl.Close()
		req := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(a.Topic)
		req.Topics = append(req.Topics, t)
		req.AllowAutoTopicCreation = true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, rt := range resp.Topics {
			if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
				r.TopicError = err.Error()
			}
			r.Partitions = len(rt.Partitions)
		}
		step("%s: %d partitions (%s)", a.Topic, r.Partitions, r.TopicError)
		return nil
	case "read":
		return read(ctx, a, r, step)
	}
	return fmt.Errorf("unknown subcommand %s", a.Scenario)
}

// create makes the topic with a.Partitions partitions (an existing one is fine).
func create(ctx context.Context, a interop.EosArgs, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Brokers()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	created, err := kadm.NewClient(cl).CreateTopics(ctx, int32(a.Partitions), -1, nil, topic)
	if err != nil {
		return err
	}
	for _, t := range created {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", topic, t.Err)
		}
	}
	return nil
}

// txnClient is a transactional producer with franz-go's defaults (acks=all, idempotent) and
// records placed on the partition they name.
func txnClient(a interop.EosArgs, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(a.Brokers()...),
		kgo.TransactionalID(a.TxnID),
		kgo.TransactionTimeout(a.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
}

// produceValues writes values prefix-from .. prefix-(to-1), value i to partition 0, and waits
// for every acknowledgement.
func produceValues(ctx context.Context, cl *kgo.Client, topic, prefix string, from, to int, r *interop.EosReport) error {
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		v := interop.EosValue(prefix, i)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(v), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	r.Produced += len(recs)
	return nil
}

// idempotent produces a.Records values to partition 0 with the idempotent producer, a few in
// flight at a time, paced so that a broker kill lands in the middle.
func idempotent(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(a.Brokers()...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var acked atomic.Int64
	var mu sync.Mutex
	var firstErr error
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				a.WriteProgress(fmt.Sprint(acked.Load()))
			}
		}
	}()
	for i := 0; i < a.Records; i++ {
		v := interop.EosValue(a.Prefix, i)
		cl.Produce(ctx, &kgo.Record{Topic: a.Topic, Partition: 0, Key: []byte(v), Value: []byte(v)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					r.ErrorsReturned++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				acked.Add(1)
			})
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	step("all %d records handed to the producer", a.Records)
	ferr := cl.Flush(ctx)
	close(done)
	r.Produced = int(acked.Load())
	a.WriteProgress(fmt.Sprint(r.Produced))
	step("flushed: %d acknowledged, %d failed", r.Produced, r.ErrorsReturned)
	if ferr != nil {
		return ferr
	}
	if firstErr != nil {
		return fmt.Errorf("%d records failed, the first with %w", r.ErrorsReturned, firstErr)
	}
	return nil
}

// ctp seeds the input topic, then runs the consume-transform-produce loop in a
// GroupTransactSession, aborting transactions 1, 4, 7, ... and the one that would finish the
// input (the session rewinds to the committed offsets after each abort).
func ctp(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	for _, t := range []string{a.Input, a.Topic} {
		if err := create(ctx, a, t); err != nil {
			return err
		}
	}
	if a.Seed {
		seed, err := kgo.NewClient(kgo.SeedBrokers(a.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		recs := make([]*kgo.Record, 0, a.Records)
		for i := 0; i < a.Records; i++ {
			v := interop.EosValue("in", i)
			recs = append(recs, &kgo.Record{Topic: a.Input, Partition: int32(i % a.Partitions), Key: []byte(v), Value: []byte(v)})
		}
		err = seed.ProduceSync(ctx, recs...).FirstErr()
		seed.Close()
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		step("seeded %d input records", a.Records)
	}

	var protocol []kgo.Opt
	if a.GroupProtocol == "consumer" {
		// KIP-848: the broker assigns the partitions (its "uniform" assignor).
		protocol = []kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer())}
	}
	sess, err := kgo.NewGroupTransactSession(append(protocol,
		kgo.SeedBrokers(a.Brokers()...),
		kgo.TransactionalID(a.TxnID),
		kgo.TransactionTimeout(a.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumerGroup(a.Group),
		kgo.ConsumeTopics(a.Input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	r.Offsets = map[string]int64{}
	committed := 0
	for txn := 0; ; txn++ {
		var batch []*kgo.Record
		for len(batch) == 0 {
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if a.Idle > 0 {
				pctx, cancel = context.WithTimeout(ctx, a.Idle)
			}
			fetches := sess.PollRecords(pctx, a.BatchMax)
			idle := errors.Is(pctx.Err(), context.DeadlineExceeded)
			cancel()
			if a.Idle > 0 && ctx.Err() == nil && idle && len(fetches.Records()) == 0 {
				step("no input for %s: done", a.Idle)
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("transaction %d: nothing to read (%d of %d inputs committed)", txn, committed, a.Records)
			}
			if err := pollError(fetches, step); err != nil {
				return fmt.Errorf("poll: %w", err)
			}
			batch = fetches.Records()
		}
		final := a.Idle == 0 && committed+len(batch) >= a.Records
		abort := (a.AbortEvery > 0 && txn%a.AbortEvery == 1) || final
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin %d: %w", txn, err)
		}
		out := make([]*kgo.Record, 0, len(batch))
		for _, in := range batch {
			v := "out-" + string(in.Value)
			out = append(out, &kgo.Record{Topic: a.Topic, Partition: in.Partition, Key: []byte(v), Value: []byte(v)})
		}
		if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("produce in transaction %d: %w", txn, err)
		}
		r.Produced += len(out)
		time.Sleep(a.Pace)
		end := kgo.TryCommit
		if abort {
			end = kgo.TryAbort
		}
		ok, err := sess.End(ctx, end)
		if err != nil {
			return fmt.Errorf("end transaction %d: %w", txn, err)
		}
		if !abort && !ok {
			// The session aborts what it cannot commit safely (a rebalance, an
			// abortable error); it has rewound to the committed offsets.
			step("transaction %d was to commit, the session aborted it", txn)
		}
		if ok {
			r.Commits++
			committed += len(batch)
			for _, in := range batch {
				r.CommittedInputs = append(r.CommittedInputs, string(in.Value))
				k := interop.PartitionKey(in.Partition)
				if in.Offset+1 > r.Offsets[k] {
					r.Offsets[k] = in.Offset + 1
				}
			}
		} else {
			r.Aborts++
		}
		step("transaction %d: %d records, committed=%v", txn, len(batch), ok)
		a.WriteProgress(fmt.Sprint(txn + 1))
		if final {
			return nil
		}
	}
}

// pollError returns the first error of a poll that ends the program (the client closed), and
// records the others as steps: franz-go reports a failed group join or fetch (a broker that is
// down, a coordinator that moved) through the poll and goes on retrying by itself.
func pollError(fetches kgo.Fetches, step func(string, ...any)) error {
	var fatal error
	fetches.EachError(func(topic string, partition int32, err error) {
		switch {
		case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			if fatal == nil {
				fatal = err
			}
		default:
			step("poll error (retried by the client) on %s/%d: %v", topic, partition, err)
		}
	})
	return fatal
}

// isFenced says whether err is franz-go's word for a producer fenced by a newer epoch.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// fence runs producer A's transaction, fences it with producer B, and checks that A can
// neither write nor commit any more.
func fence(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	first, err := txnClient(a)
	if err != nil {
		return err
	}
	defer first.Close()
	if err := first.BeginTransaction(); err != nil {
		return err
	}
	if err := produceValues(ctx, first, a.Topic, a.Prefix+"-a", 0, a.Records, r); err != nil {
		return fmt.Errorf("producer A: %w", err)
	}
	step("producer A wrote %d records in its transaction", a.Records)

	second, err := txnClient(a)
	if err != nil {
		return err
	}
	defer second.Close()
	if err := second.BeginTransaction(); err != nil {
		return err
	}
	// franz-go sends InitProducerId before its first produce: this fences A.
	if err := produceValues(ctx, second, a.Topic, a.Prefix+"-b", 0, a.Records, r); err != nil {
		return fmt.Errorf("producer B: %w", err)
	}
	step("producer B (same transactional id) wrote %d records", a.Records)

	after := interop.EosValue(a.Prefix+"-a", -1)
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	aerr := first.ProduceSync(actx, &kgo.Record{Topic: a.Topic, Partition: 0, Key: []byte(after), Value: []byte(after)}).FirstErr()
	cancel()
	if aerr == nil {
		return errors.New("producer A wrote a record after it was fenced")
	}
	r.AfterFenceErr = aerr.Error()
	step("producer A's write after the fence failed: %v", aerr)
	cerr := first.EndTransaction(ctx, kgo.TryCommit)
	if cerr == nil {
		return errors.New("producer A committed after it was fenced")
	}
	r.CommitErr = cerr.Error()
	r.Fenced = isFenced(aerr) || isFenced(cerr)
	step("producer A's commit failed: %v (fenced: %v)", cerr, r.Fenced)

	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("producer B's commit: %w", err)
	}
	r.Committed = true
	step("producer B committed")
	if !r.Fenced {
		return errors.New("producer A's errors do not say it was fenced")
	}
	return nil
}

// txnOpen writes a transaction and either leaves it open (no -resume) or, once the resume
// file appears, finishes and commits it.
func txnOpen(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	cl, err := txnClient(a)
	if err != nil {
		return err
	}
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	half := a.Records
	if a.Resume != "" {
		half = a.Records / 2
	}
	if err := produceValues(ctx, cl, a.Topic, a.Prefix, 0, half, r); err != nil {
		return err
	}
	step("wrote %d records in an open transaction", half)
	a.WriteProgress("open")
	if a.Resume == "" {
		// Leave without ending the transaction: the producer is gone, as after a crash.
		step("left the transaction open")
		return nil
	}
	deadline, _ := ctx.Deadline()
	if err := a.WaitResume(deadline); err != nil {
		return err
	}
	step("resuming")
	defer cl.Close()
	if err := produceValues(ctx, cl, a.Topic, a.Prefix, half, a.Records, r); err != nil {
		r.CommitErr = err.Error()
		step("the second half failed: %v", err)
		step("abort: %v", cl.EndTransaction(ctx, kgo.TryAbort))
		again(ctx, cl, a, r, step)
		return nil
	}
	step("wrote the other %d records", a.Records-half)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		r.CommitErr = err.Error()
		step("commit failed: %v", err)
		again(ctx, cl, a, r, step)
		return nil
	}
	r.Committed = true
	step("committed")
	return nil
}

// again tries one more transaction on a producer whose last one failed.
func again(ctx context.Context, cl *kgo.Client, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) {
	err := cl.BeginTransaction()
	if err == nil {
		err = produceValues(ctx, cl, a.Topic, a.Prefix+"-again", 0, a.Records, r)
		if err == nil {
			err = cl.EndTransaction(ctx, kgo.TryCommit)
		} else {
			_ = cl.EndTransaction(ctx, kgo.TryAbort)
		}
	}
	if err != nil {
		r.RecoverErr = err.Error()
		step("the next transaction failed: %v", err)
		return
	}
	r.Recovered = true
	step("the next transaction committed")
}

// read marks the end of every partition with a plain record, then reads each partition with
// the isolation level asked for up to that record.
func read(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	marker, err := kgo.NewClient(kgo.SeedBrokers(a.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	ends := make([]*kgo.Record, 0, a.Partitions)
	for p := 0; p < a.Partitions; p++ {
		ends = append(ends, &kgo.Record{Topic: a.Topic, Partition: int32(p), Value: []byte(interop.EndValue)})
	}
	err = marker.ProduceSync(ctx, ends...).FirstErr()
	marker.Close()
	if err != nil {
		return fmt.Errorf("end records: %w", err)
	}
	step("wrote an end record to each of %d partitions", a.Partitions)

	level := kgo.ReadUncommitted()
	if a.ReadCommitted() {
		level = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(a.Brokers()...),
		kgo.ConsumeTopics(a.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	r.Values = map[string][]string{}
	for p := 0; p < a.Partitions; p++ {
		r.Values[interop.PartitionKey(int32(p))] = []string{}
	}
	ended := map[int32]bool{}
	for len(ended) < a.Partitions {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d of %d partitions read up to their end record in time", a.Isolation, len(ended), a.Partitions)
		}
		if err := pollError(fetches, step); err != nil {
			return err
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			if ended[rec.Partition] {
				return
			}
			if string(rec.Value) == interop.EndValue {
				ended[rec.Partition] = true
				return
			}
			k := interop.PartitionKey(rec.Partition)
			r.Values[k] = append(r.Values[k], string(rec.Value))
		})
	}
	step("read every partition to its end record (%s)", a.Isolation)
	if a.Group != "" {
		offsets, err := kadm.NewClient(cl).FetchOffsets(ctx, a.Group)
		if err != nil {
			return fmt.Errorf("fetch the group's offsets: %w", err)
		}
		r.GroupOffsets = map[string]int64{}
		offsets.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil {
				r.GroupOffsets[interop.PartitionKey(o.Partition)] = o.At
			}
		})
		step("the group's committed offsets: %v", r.GroupOffsets)
	}
	return nil
}
