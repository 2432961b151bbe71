// sarama: creates a topic with the ClusterAdmin, produces N records with a SyncProducer,
// consumes them in a consumer group, commits, and reads the committed offsets back with the
// ClusterAdmin. sarama's default configuration apart from what the test needs (producer
// successes returned, consumption from the oldest offset, manual commit). Prints a JSON summary.
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
	o := interop.ParseOptions()
	start := time.Now()
	s := &interop.Summary{Client: "sarama", Topic: o.Topic, Group: o.Group, InOrder: true}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	err := run(ctx, o, s)
	s.Finish(start, o.Records, err)
}

func run(ctx context.Context, o interop.Options, s *interop.Summary) error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "gregor-interop-sarama"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	brokers := []string{o.Bootstrap}

	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("cluster admin: %w", err)
	}
	defer admin.Close()
	err = admin.CreateTopic(o.Topic, &sarama.TopicDetail{NumPartitions: int32(o.Partitions), ReplicationFactor: 1}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("create topic: %w", err)
	}
	s.Steps = append(s.Steps, "create topic")

	prod, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	msgs := make([]*sarama.ProducerMessage, 0, o.Records)
	for i := 0; i < o.Records; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: o.Topic,
			Key:   sarama.StringEncoder(interop.Key(i)),
			Value: sarama.StringEncoder(interop.Value(i)),
		})
	}
	if err := prod.SendMessages(msgs); err != nil {
		_ = prod.Close()
		return fmt.Errorf("produce: %w", err)
	}
	s.Produced = len(msgs)
	if err := prod.Close(); err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	s.Steps = append(s.Steps, "produce")

	group, err := sarama.NewConsumerGroup(brokers, o.Group, cfg)
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	h := &handler{want: o.Records, seen: map[string]bool{}, last: map[int32]int64{}, done: make(chan struct{}), inOrder: true}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := group.Consume(cctx, []string{o.Topic}, h); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	select {
	case <-h.done:
	case err := <-errs:
		_ = group.Close()
		if err == nil {
			err = fmt.Errorf("%d of %d records before the deadline", h.consumed(), o.Records)
		}
		return fmt.Errorf("consume: %w", err)
	case <-ctx.Done():
		_ = group.Close()
		return fmt.Errorf("consume: %d of %d records before the deadline", h.consumed(), o.Records)
	}
	stop()
	<-errs
	if err := group.Close(); err != nil {
		return fmt.Errorf("close consumer group: %w", err)
	}
	s.Consumed = h.consumed()
	s.InOrder = h.inOrder
	for i := 0; i < o.Records; i++ {
		if !h.seen[interop.Key(i)+"="+interop.Value(i)] {
			return fmt.Errorf("record %d (%s) never consumed", i, interop.Key(i))
		}
	}
	s.Steps = append(s.Steps, "consume in group", "commit")

	offsets, err := admin.ListConsumerGroupOffsets(o.Group, map[string][]int32{o.Topic: partitions(o.Partitions)})
	if err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	if offsets.Err != sarama.ErrNoError {
		return fmt.Errorf("fetch committed offsets: %w", offsets.Err)
	}
	for _, block := range offsets.Blocks[o.Topic] {
		if block.Err != sarama.ErrNoError {
			return fmt.Errorf("fetch committed offsets: %w", block.Err)
		}
		if block.Offset > 0 {
			s.Committed += block.Offset
		}
	}
	s.Steps = append(s.Steps, "fetch committed offsets")
	return nil
}

func partitions(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// handler consumes until it has seen every record, then commits and closes done.
type handler struct {
	mu      sync.Mutex
	want    int
	seen    map[string]bool
	last    map[int32]int64
	inOrder bool
	done    chan struct{}
	closed  bool
}

func (h *handler) consumed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		if prev, ok := h.last[msg.Partition]; ok && msg.Offset <= prev {
			h.inOrder = false
		}
		h.last[msg.Partition] = msg.Offset
		h.seen[string(msg.Key)+"="+string(msg.Value)] = true
		sess.MarkMessage(msg, "")
		complete := len(h.seen) >= h.want && !h.closed
		if complete {
			h.closed = true
		}
		h.mu.Unlock()
		if complete {
			// With auto-commit off, Commit sends the marked offsets now. Its errors go to
			// the group's Errors channel, off by default (logged instead): a failed commit
			// shows in the committed offsets read back afterwards.
			sess.Commit()
			close(h.done)
		}
	}
	return nil
}
