// eos-sarama: issue 12's exactly-once scenarios with sarama: the idempotent producer,
// consume-transform-produce (partition consumers and a transactional SyncProducer sending the
// input offsets with AddOffsetsToTxn), fencing by a second producer with the same
// transactional id, and transactions left open across a broker kill. Subcommands, flags and
// output: interop.EosArgs and interop.EosReport; fence, txn-open and txn-commit are
// interop.EosMain's, driving this client through interop.TxnProducer.
//
// sarama gives up on a record after Producer.Retry.Max retries (3 by default, 100 ms apart),
// less than a broker restart takes; the producers here allow 50 retries 200 ms apart, as an
// application that must ride out a broker restart would configure.
package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"gregor/interop"
)

func main() {
	interop.EosMain(interop.EosClient{
		Name:   "sarama",
		Module: "github.com/IBM/sarama",
		NewTxnProducer: func(a interop.EosArgs) (interop.TxnProducer, error) {
			prod, err := sarama.NewSyncProducer(a.Brokers(), txnConfig(a))
			if err != nil {
				return nil, err
			}
			return txnProducer{prod: prod, topic: a.Topic}, nil
		},
		Run: run,
	})
}

// run runs the subcommands that are not interop's shared transaction scenarios.
func run(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	switch a.Scenario {
	case "create":
		return create(a, a.Topic)
	case "idempotent":
		return idempotent(ctx, a, r, step)
	case "ctp":
		return ctp(ctx, a, r, step)
	case "metadata":
		cfg := baseConfig()
		cfg.Metadata.Retry.Max = 0
		client, err := sarama.NewClient(a.Brokers(), cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		if err := client.RefreshMetadata(a.Topic); err != nil {
			r.TopicError = err.Error()
		}
		ps, err := client.Partitions(a.Topic)
		if err != nil && r.TopicError == "" {
			r.TopicError = err.Error()
		}
		r.Partitions = len(ps)
		step("%s: %d partitions (%s)", a.Topic, r.Partitions, r.TopicError)
		return nil
	case "read":
		return read(ctx, a, r, step)
	}
	return fmt.Errorf("unknown subcommand %s", a.Scenario)
}

// baseConfig is sarama's default configuration with successes returned, records placed on the
// partition they name, and enough retries to ride out a broker restart.
func baseConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Retry.Max = 50
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Metadata.Retry.Max = 50
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	return cfg
}

// idempotentConfig is what sarama requires of an idempotent producer.
func idempotentConfig() *sarama.Config {
	cfg := baseConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	return cfg
}

// txnConfig is a transactional producer's configuration.
func txnConfig(a interop.EosArgs) *sarama.Config {
	cfg := idempotentConfig()
	cfg.Producer.Transaction.ID = a.TxnID
	cfg.Producer.Transaction.Timeout = a.TxnTimeout
	return cfg
}

// create makes the topic with a.Partitions partitions (an existing one is fine).
func create(a interop.EosArgs, topic string) error {
	admin, err := sarama.NewClusterAdmin(a.Brokers(), baseConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(a.Partitions), ReplicationFactor: -1}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	return nil
}

func message(topic string, partition int32, v string) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Partition: partition, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}
}

// txnProducer is sarama's transactional SyncProducer as interop's shared scenarios drive it
// (sarama's calls take no context).
type txnProducer struct {
	prod  sarama.SyncProducer
	topic string
}

func (p txnProducer) Begin() error { return p.prod.BeginTxn() }

func (p txnProducer) Produce(_ context.Context, prefix string, from, to int) error {
	msgs := make([]*sarama.ProducerMessage, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, message(p.topic, 0, interop.EosValue(prefix, i)))
	}
	return p.prod.SendMessages(msgs)
}

// ProduceOne sends by SendMessage, whose error is the broker's (SendMessages' counts failures).
func (p txnProducer) ProduceOne(_ context.Context, v string) error {
	_, _, err := p.prod.SendMessage(message(p.topic, 0, v))
	return err
}

func (p txnProducer) Commit(context.Context) error { return p.prod.CommitTxn() }
func (p txnProducer) Abort(context.Context) error  { return p.prod.AbortTxn() }

func (p txnProducer) Explain(err error) string {
	return fmt.Sprintf("%v (status %s)", err, p.prod.TxnStatus())
}

// IsFenced says whether err is sarama's word for a producer fenced by a newer epoch, or the
// producer is in a fatal error state.
func (p txnProducer) IsFenced(err error) bool {
	return errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch) ||
		p.prod.TxnStatus()&sarama.ProducerTxnFlagFatalError != 0
}

func (p txnProducer) Close() error { return p.prod.Close() }

// idempotent produces a.Records values to partition 0 with the idempotent AsyncProducer,
// paced so that a broker kill lands in the middle.
func idempotent(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	cfg := idempotentConfig()
	cfg.Producer.Return.Errors = true
	prod, err := sarama.NewAsyncProducer(a.Brokers(), cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var firstErr error
	acked := 0
	var mu sync.Mutex
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range prod.Successes() {
			mu.Lock()
			acked++
			if acked%20 == 0 {
				a.WriteProgress(fmt.Sprint(acked))
			}
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for perr := range prod.Errors() {
			mu.Lock()
			r.ErrorsReturned++
			if firstErr == nil {
				firstErr = perr.Err
			}
			mu.Unlock()
		}
	}()
	for i := 0; i < a.Records; i++ {
		select {
		case prod.Input() <- message(a.Topic, 0, interop.EosValue(a.Prefix, i)):
		case <-ctx.Done():
			prod.AsyncClose()
			wg.Wait()
			return fmt.Errorf("handed %d of %d records to the producer in time", i, a.Records)
		}
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	step("all %d records handed to the producer", a.Records)
	// Wait for every record's answer before closing: sarama 1.61.1's AsyncClose fails a batch
	// that is being retried at that moment (an idempotent batch after a leader change) with
	// ErrShuttingDown instead of sending it again.
	for {
		mu.Lock()
		answered := acked + r.ErrorsReturned
		mu.Unlock()
		if answered >= a.Records || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	prod.AsyncClose()
	wg.Wait()
	r.Produced = acked
	a.WriteProgress(fmt.Sprint(acked))
	step("closed: %d acknowledged, %d failed", acked, r.ErrorsReturned)
	if firstErr != nil {
		return fmt.Errorf("%d records failed, the first with %w", r.ErrorsReturned, firstErr)
	}
	return nil
}

// inputReader reads the input topic's partitions from given offsets into one channel; a
// reader is replaced (closed, and a new one opened at the committed offsets) after an abort.
type inputReader struct {
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	msgs     chan *sarama.ConsumerMessage
	stop     chan struct{}
	wg       sync.WaitGroup
}

func openInput(brokers []string, topic string, partitions int, from map[int32]int64) (*inputReader, error) {
	cfg := baseConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		return nil, err
	}
	in := &inputReader{consumer: consumer, msgs: make(chan *sarama.ConsumerMessage), stop: make(chan struct{})}
	for p := int32(0); p < int32(partitions); p++ {
		offset, ok := from[p]
		if !ok || offset < 0 {
			offset = sarama.OffsetOldest
		}
		pc, err := consumer.ConsumePartition(topic, p, offset)
		if err != nil {
			in.close()
			return nil, fmt.Errorf("consume partition %d from %d: %w", p, offset, err)
		}
		in.pcs = append(in.pcs, pc)
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			for m := range pc.Messages() {
				select {
				case in.msgs <- m:
				case <-in.stop:
					return
				}
			}
		}()
	}
	return in, nil
}

func (in *inputReader) close() {
	close(in.stop)
	for _, pc := range in.pcs {
		pc.AsyncClose()
	}
	in.wg.Wait()
	_ = in.consumer.Close()
}

// batch waits for one record, then takes what else arrives within 100 ms, up to max.
func (in *inputReader) batch(ctx context.Context, max int) ([]*sarama.ConsumerMessage, error) {
	var out []*sarama.ConsumerMessage
	select {
	case m := <-in.msgs:
		out = append(out, m)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	linger := time.After(100 * time.Millisecond)
	for len(out) < max {
		select {
		case m := <-in.msgs:
			out = append(out, m)
		case <-linger:
			return out, nil
		}
	}
	return out, nil
}

// groupOffsets reads the group's committed offsets of the input topic from the broker.
func groupOffsets(admin sarama.ClusterAdmin, group, topic string, partitions int) (map[int32]int64, error) {
	ps := make([]int32, 0, partitions)
	for p := 0; p < partitions; p++ {
		ps = append(ps, int32(p))
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if err != nil {
		return nil, err
	}
	if resp.Err != sarama.ErrNoError {
		return nil, resp.Err
	}
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("partition %d: %w", p, b.Err)
		}
		out[p] = b.Offset
	}
	return out, nil
}

// ctp seeds the input topic, then runs the consume-transform-produce loop: each transaction
// writes the outputs of a batch of inputs and sends the input offsets with AddOffsetsToTxn;
// transactions 1, 4, 7, ... and the one that would finish the input abort, after which the
// input is read again from the offsets the broker has committed for the group.
func ctp(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	brokers := a.Brokers()
	if a.GroupProtocol != "classic" {
		return errors.New("sarama has no client for KIP-848's consumer group protocol")
	}
	if a.Idle > 0 {
		return errors.New("-idle: this program's sarama loop assigns itself every partition, it cannot share a group's input")
	}
	for _, t := range []string{a.Input, a.Topic} {
		if err := create(a, t); err != nil {
			return err
		}
	}
	if a.Seed {
		seed, err := sarama.NewSyncProducer(brokers, idempotentConfig())
		if err != nil {
			return err
		}
		msgs := make([]*sarama.ProducerMessage, 0, a.Records)
		for i := 0; i < a.Records; i++ {
			msgs = append(msgs, message(a.Input, int32(i%a.Partitions), interop.EosValue("in", i)))
		}
		err = seed.SendMessages(msgs)
		_ = seed.Close()
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		step("seeded %d input records", a.Records)
	}

	admin, err := sarama.NewClusterAdmin(brokers, baseConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	prod, err := sarama.NewSyncProducer(brokers, txnConfig(a))
	if err != nil {
		return err
	}
	defer prod.Close()
	committedOffsets := map[int32]int64{}
	in, err := openInput(brokers, a.Input, a.Partitions, committedOffsets)
	if err != nil {
		return err
	}
	defer func() { in.close() }()

	r.Offsets = map[string]int64{}
	committed := 0
	for txn := 0; ; txn++ {
		batch, err := in.batch(ctx, a.BatchMax)
		if err != nil {
			return fmt.Errorf("transaction %d: nothing to read (%d of %d inputs committed): %w", txn, committed, a.Records, err)
		}
		final := committed+len(batch) >= a.Records
		abort := (a.AbortEvery > 0 && txn%a.AbortEvery == 1) || final
		next := map[int32]int64{}
		for _, m := range batch {
			if m.Offset+1 > next[m.Partition] {
				next[m.Partition] = m.Offset + 1
			}
		}
		ok, err := transact(prod, a, r, batch, next, !abort)
		if err != nil {
			return fmt.Errorf("transaction %d: %w", txn, err)
		}
		a.WriteProgress(fmt.Sprint(txn + 1))
		if ok {
			r.Commits++
			committed += len(batch)
			for p, o := range next {
				committedOffsets[p] = o
				r.Offsets[interop.PartitionKey(p)] = o
			}
			for _, m := range batch {
				r.CommittedInputs = append(r.CommittedInputs, string(m.Value))
			}
			step("transaction %d: %d records, committed", txn, len(batch))
			continue
		}
		r.Aborts++
		step("transaction %d: %d records, aborted", txn, len(batch))
		if final {
			return nil
		}
		// Read again from what the broker committed for the group: the aborted
		// transaction's offsets must not be there.
		fromBroker, err := groupOffsets(admin, a.Group, a.Input, a.Partitions)
		if err != nil {
			return fmt.Errorf("the group's offsets after abort %d: %w", txn, err)
		}
		for p := int32(0); p < int32(a.Partitions); p++ {
			want, ok := committedOffsets[p]
			if !ok {
				want = -1
			}
			if fromBroker[p] != want {
				return fmt.Errorf("after abort %d the group's offset of partition %d is %d, the last committed transaction's is %d", txn, p, fromBroker[p], want)
			}
		}
		in.close()
		in, err = openInput(brokers, a.Input, a.Partitions, committedOffsets)
		if err != nil {
			return err
		}
	}
}

// transact runs one transaction: the batch's outputs, a pause of a.Pace with the transaction
// open, the input offsets next for the group, then a commit (when commit is set) or an
// abort. An error that leaves the transaction abortable (sarama's ProducerTxnFlagAbortableError)
// ends it with an abort instead; it returns whether the transaction committed, and an error
// only when the producer cannot go on.
func transact(prod sarama.SyncProducer, a interop.EosArgs, r *interop.EosReport, batch []*sarama.ConsumerMessage, next map[int32]int64, commit bool) (bool, error) {
	if err := prod.BeginTxn(); err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	out := make([]*sarama.ProducerMessage, 0, len(batch))
	for _, m := range batch {
		out = append(out, message(a.Topic, m.Partition, "out-"+string(m.Value)))
	}
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	for p, o := range next {
		offsets[a.Input] = append(offsets[a.Input], &sarama.PartitionOffsetMetadata{Partition: p, Offset: o})
	}
	err := prod.SendMessages(out)
	if err == nil {
		r.Produced += len(out)
		time.Sleep(a.Pace)
		err = prod.AddOffsetsToTxn(offsets, a.Group)
	}
	if err == nil && commit {
		if err = prod.CommitTxn(); err == nil {
			return true, nil
		}
	}
	if err != nil && prod.TxnStatus()&sarama.ProducerTxnFlagAbortableError == 0 {
		return false, fmt.Errorf("%w (status %s)", err, prod.TxnStatus())
	}
	if aerr := prod.AbortTxn(); aerr != nil {
		return false, fmt.Errorf("abort after %v: %w", err, aerr)
	}
	return false, nil
}

// read marks the end of every partition with a plain record, then reads each partition with
// the isolation level asked for up to that record.
func read(ctx context.Context, a interop.EosArgs, r *interop.EosReport, step func(string, ...any)) error {
	brokers := a.Brokers()
	marker, err := sarama.NewSyncProducer(brokers, idempotentConfig())
	if err != nil {
		return err
	}
	ends := make([]*sarama.ProducerMessage, 0, a.Partitions)
	for p := 0; p < a.Partitions; p++ {
		ends = append(ends, &sarama.ProducerMessage{Topic: a.Topic, Partition: int32(p), Value: sarama.StringEncoder(interop.EndValue)})
	}
	err = marker.SendMessages(ends)
	_ = marker.Close()
	if err != nil {
		return fmt.Errorf("end records: %w", err)
	}
	step("wrote an end record to each of %d partitions", a.Partitions)

	cfg := baseConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadUncommitted
	if a.ReadCommitted() {
		cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		return err
	}
	defer consumer.Close()
	r.Values = map[string][]string{}
	for p := int32(0); p < int32(a.Partitions); p++ {
		pc, err := consumer.ConsumePartition(a.Topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
		values := []string{}
		ended := false
		for !ended {
			select {
			case m := <-pc.Messages():
				if string(m.Value) == interop.EndValue {
					ended = true
				} else {
					values = append(values, string(m.Value))
				}
			case <-ctx.Done():
				pc.AsyncClose()
				return fmt.Errorf("%s: partition %d not read up to its end record in time (%d values)", a.Isolation, p, len(values))
			}
		}
		_ = pc.Close()
		r.Values[interop.PartitionKey(p)] = values
	}
	step("read every partition to its end record (%s)", a.Isolation)
	if a.Group != "" {
		admin, err := sarama.NewClusterAdmin(brokers, baseConfig())
		if err != nil {
			return err
		}
		defer admin.Close()
		resp, err := admin.ListConsumerGroupOffsets(a.Group, nil)
		if err != nil {
			return fmt.Errorf("fetch the group's offsets: %w", err)
		}
		r.GroupOffsets = map[string]int64{}
		for _, blocks := range resp.Blocks {
			for p, b := range blocks {
				if b.Err == sarama.ErrNoError && b.Offset >= 0 {
					r.GroupOffsets[interop.PartitionKey(p)] = b.Offset
				}
			}
		}
		step("the group's committed offsets: %v", r.GroupOffsets)
	}
	return nil
}
