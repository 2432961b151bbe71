// eos-franz-go: issue 12's exactly-once scenarios with franz-go (kgo, kadm): the idempotent
// producer, consume-transform-produce with kgo.GroupTransactSession, fencing by a second
// producer with the same transactional id, and transactions left open across a broker kill.
// Subcommands, flags and output: interop.EosArgs and interop.EosReport; fence, txn-open and
// txn-commit are interop.EosMain's, driving this client through interop.TxnProducer.
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
	interop.EosMain(interop.EosClient{
		Name:   "franz-go",
		Module: "github.com/twmb/franz-go",
		NewTxnProducer: func(a interop.EosArgs) (interop.TxnProducer, error) {
			cl, err := txnClient(a)
			if err != nil {
				return nil, err
			}
			return txnProducer{cl: cl, topic: a.Topic}, nil
		},
		Run: run,
	})
}

// run runs the subcommands that are not interop's shared transaction scenarios.
func run(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	switch a.Scenario {
	case "create":
		return create(ctx, a, a.Topic)
	case "idempotent":
		return idempotent(ctx, a, r, step)
	case "ctp":
		return ctp(ctx, a, r, step)
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

// txnProducer is franz-go's transactional client as interop's shared scenarios drive it.
type txnProducer struct {
	cl    *kgo.Client
	topic string
}

func (p txnProducer) Begin() error { return p.cl.BeginTransaction() }

func (p txnProducer) Produce(ctx context.Context, prefix string, from, to int) error {
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		v := interop.EosValue(prefix, i)
		recs = append(recs, &kgo.Record{Topic: p.topic, Partition: 0, Key: []byte(v), Value: []byte(v)})
	}
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

func (p txnProducer) ProduceOne(ctx context.Context, v string) error {
	return p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Partition: 0, Key: []byte(v), Value: []byte(v)}).FirstErr()
}

func (p txnProducer) Commit(ctx context.Context) error {
	return p.cl.EndTransaction(ctx, kgo.TryCommit)
}
func (p txnProducer) Abort(ctx context.Context) error { return p.cl.EndTransaction(ctx, kgo.TryAbort) }
func (p txnProducer) Explain(err error) string        { return err.Error() }

// IsFenced says whether err is franz-go's word for a producer fenced by a newer epoch.
func (p txnProducer) IsFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

func (p txnProducer) Close() error {
	p.cl.Close()
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
	opts := append(protocol,
		kgo.SeedBrokers(a.Brokers()...),
		kgo.TransactionalID(a.TxnID),
		kgo.TransactionTimeout(a.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumerGroup(a.Group),
		kgo.ConsumeTopics(a.Input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer func() { sess.Close() }()
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
		if _, broker := errors.AsType[*kerr.Error](err); err != nil && !broker && ctx.Err() == nil {
			// A transport error (the coordinator's node died and its successor could not
			// be reached in time): franz-go leaves the outcome unconfirmed and the session
			// unusable. Do what its docs ask of an application: start again, after
			// learning from the cluster whether the transaction committed.
			step("transaction %d: ending it failed, its outcome unknown: %v", txn, err)
			sess.Close()
			if ok, err = settle(ctx, a, batch, step); err != nil {
				return fmt.Errorf("settle transaction %d: %w", txn, err)
			}
			if ok && abort {
				return fmt.Errorf("transaction %d was to abort, and it committed", txn)
			}
			if sess, err = kgo.NewGroupTransactSession(opts...); err != nil {
				return err
			}
		}
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

// settle learns the outcome of a transaction whose end was not confirmed: InitProducerID
// under the transactional id (as a restarted producer would) makes the coordinator finish
// it, committing what was prepared and aborting what was not; the group's committed offsets
// then say whether the batch's inputs were committed with it.
func settle(ctx context.Context, a interop.EosArgs, batch []*kgo.Record, step func(string, ...any)) (bool, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Brokers()...))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = kmsg.StringPtr(a.TxnID)
		req.TransactionTimeoutMillis = int32(a.TxnTimeout.Milliseconds())
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			break
		}
		// CONCURRENT_TRANSACTIONS: the coordinator is aborting the open transaction (kerr
		// does not mark it retriable; Kafka's clients retry it).
		if ke, broker := errors.AsType[*kerr.Error](err); broker && !ke.Retriable && ke != kerr.ConcurrentTransactions {
			return false, fmt.Errorf("init producer id: %w", err)
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("init producer id: %w", err)
		}
		step("settling: init producer id: %v (retrying)", err)
		time.Sleep(200 * time.Millisecond)
	}
	offsets, err := kadm.NewClient(cl).FetchOffsets(kadm.RequireStable(ctx), a.Group)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return false, fmt.Errorf("fetch the group's offsets: %w", err)
	}
	next := map[int32]int64{}
	for _, in := range batch {
		next[in.Partition] = max(next[in.Partition], in.Offset+1)
	}
	var done, pending []int32
	for p, end := range next {
		if o, ok := offsets.Lookup(a.Input, p); ok && o.At >= end {
			done = append(done, p)
		} else {
			pending = append(pending, p)
		}
	}
	if len(done) > 0 && len(pending) > 0 {
		return false, fmt.Errorf("the offsets of partitions %v were committed and not those of %v", done, pending)
	}
	step("settled: committed=%v", len(done) > 0)
	return len(done) > 0, nil
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
