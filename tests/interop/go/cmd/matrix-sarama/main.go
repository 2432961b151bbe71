// matrix-sarama: the client matrix's driver for sarama, with sarama's default configuration
// apart from what the matrix needs (producer successes returned, consumption from the oldest
// offset, manual commit). Arguments and output: interop.MatrixArgs.
package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"gregor/interop"
)

func main() {
	a := interop.ParseMatrixArgs()
	r := &interop.MatrixResult{Version: interop.ModuleVersion("github.com/IBM/sarama")}
	ctx, cancel := context.WithTimeout(context.Background(), interop.MatrixTimeout)
	defer cancel()
	r.Emit(run(ctx, a, r))
}

func config(props map[string]string, s interop.MatrixSecurity) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	if s.TLS() {
		tlsConfig, err := s.TLSConfig()
		if err != nil {
			return nil, err
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsConfig
	}
	if s.SASL() {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = s.User
		cfg.Net.SASL.Password = s.Password
		cfg.Net.SASL.Mechanism = sarama.SASLMechanism(s.Mechanism)
		switch s.Mechanism {
		case sarama.SASLTypePlaintext:
		case sarama.SASLTypeSCRAMSHA256:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{sha512: false}
			}
		case sarama.SASLTypeSCRAMSHA512:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{sha512: true}
			}
		default:
			return nil, fmt.Errorf("SASL mechanism %q not mapped to sarama", s.Mechanism)
		}
	}
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	for k, v := range props {
		switch {
		case k == "acks" && v == "all":
			cfg.Producer.RequiredAcks = sarama.WaitForAll
		case k == "enable.idempotence" && v == "false":
			cfg.Producer.Idempotent = false
		default:
			return nil, fmt.Errorf("producer setting %s=%s not mapped to sarama", k, v)
		}
	}
	return cfg, nil
}

func run(ctx context.Context, a interop.MatrixArgs, r *interop.MatrixResult) error {
	cfg, err := config(a.Props, a.Security)
	if err != nil {
		return err
	}
	brokers := a.Bootstrap
	switch a.Step {
	case "create":
		admin, err := sarama.NewClusterAdmin(brokers, cfg)
		if err != nil {
			return err
		}
		defer admin.Close()
		err = admin.CreateTopic(a.Topic, &sarama.TopicDetail{NumPartitions: int32(a.N), ReplicationFactor: -1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return err
		}
		return nil
	case "produce":
		prod, err := sarama.NewSyncProducer(brokers, cfg)
		if err != nil {
			return err
		}
		msgs := make([]*sarama.ProducerMessage, 0, a.N)
		for i := 0; i < a.N; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: a.Topic,
				Key:   sarama.StringEncoder("k" + strconv.Itoa(i)),
				Value: sarama.StringEncoder("v" + strconv.Itoa(i)),
			})
		}
		if err := prod.SendMessages(msgs); err != nil {
			_ = prod.Close()
			return err
		}
		r.Produced = a.N
		return prod.Close()
	case "consume":
		group, err := sarama.NewConsumerGroup(brokers, a.Group, cfg)
		if err != nil {
			return err
		}
		h := &handler{want: a.N, done: make(chan struct{})}
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		errs := make(chan error, 1)
		go func() {
			for cctx.Err() == nil {
				if err := group.Consume(cctx, []string{a.Topic}, h); err != nil {
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
			return fmt.Errorf("consume: %v (%d of %d records)", err, len(h.keys), a.N)
		case <-ctx.Done():
			_ = group.Close()
			r.Keys = h.keys
			return fmt.Errorf("consumed %d of %d records in %s", len(h.keys), a.N, interop.MatrixTimeout)
		}
		stop()
		<-errs
		r.Keys = h.keys
		return group.Close()
	case "describe":
		admin, err := sarama.NewClusterAdmin(brokers, cfg)
		if err != nil {
			return err
		}
		defer admin.Close()
		r.Check("list topics", func() error {
			t, err := admin.ListTopics()
			if err != nil {
				return err
			}
			if _, ok := t[a.Topic]; !ok {
				return fmt.Errorf("%s not listed", a.Topic)
			}
			return nil
		})
		r.Check("describe topic", func() error {
			d, err := admin.DescribeTopics([]string{a.Topic})
			if err != nil {
				return err
			}
			if len(d) != 1 || d[0].Err != sarama.ErrNoError || len(d[0].Partitions) == 0 {
				return fmt.Errorf("describe: %+v", d)
			}
			return nil
		})
		r.Check("describe cluster", func() error {
			b, _, err := admin.DescribeCluster()
			if err != nil {
				return err
			}
			if len(b) == 0 {
				return errors.New("no brokers")
			}
			return nil
		})
		r.Check("list groups", func() error {
			g, err := admin.ListConsumerGroups()
			if err != nil {
				return err
			}
			if _, ok := g[a.Group]; !ok {
				return fmt.Errorf("%s not listed", a.Group)
			}
			return nil
		})
		r.Check("describe group", func() error {
			d, err := admin.DescribeConsumerGroups([]string{a.Group})
			if err != nil {
				return err
			}
			if len(d) != 1 || d[0].Err != sarama.ErrNoError || d[0].State != "Empty" {
				return fmt.Errorf("describe: %+v", d)
			}
			return nil
		})
		return nil
	}
	return fmt.Errorf("unknown step %s", a.Step)
}

// handler processes records until it has want, marks exactly those, commits, and closes done.
type handler struct {
	mu     sync.Mutex
	want   int
	keys   []string
	done   chan struct{}
	closed bool
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			continue
		}
		h.keys = append(h.keys, string(msg.Key))
		sess.MarkMessage(msg, "")
		complete := len(h.keys) >= h.want
		if complete {
			h.closed = true
		}
		h.mu.Unlock()
		if complete {
			sess.Commit()
			close(h.done)
		}
	}
	return nil
}

// scramClient is the SCRAM exchange sarama leaves to the application (its SCRAMClient), done by
// franz-go's SCRAM mechanism, which this module already depends on: sarama's first Step("")
// asks for the client-first message, each later Step answers the broker's message, and Done
// turns true once the broker's final message has been verified.
type scramClient struct {
	sha512  bool
	mech    sasl.Mechanism
	session sasl.Session
	done    bool
}

func (c *scramClient) Begin(user, password, authzID string) error {
	if authzID != "" {
		return errors.New("SCRAM with an authorization id is not supported")
	}
	auth := scram.Auth{User: user, Pass: password}
	if c.sha512 {
		c.mech = auth.AsSha512Mechanism()
	} else {
		c.mech = auth.AsSha256Mechanism()
	}
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) {
	if c.session == nil {
		session, first, err := c.mech.Authenticate(context.Background(), "")
		if err != nil {
			return "", err
		}
		c.session = session
		return string(first), nil
	}
	done, response, err := c.session.Challenge([]byte(challenge))
	if err != nil {
		return "", err
	}
	c.done = done
	return string(response), nil
}

func (c *scramClient) Done() bool { return c.done }
