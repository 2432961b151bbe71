// matrix-franz-go: the client matrix's driver for franz-go (kgo, kadm), with franz-go's default
// settings apart from manual commits. Arguments and output: interop.MatrixArgs.
package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"gregor/interop"
)

func main() {
	a := interop.ParseMatrixArgs()
	r := &interop.MatrixResult{Version: interop.ModuleVersion("github.com/twmb/franz-go")}
	ctx, cancel := context.WithTimeout(context.Background(), interop.MatrixTimeout)
	defer cancel()
	r.Emit(run(ctx, a, r))
}

func producerOpts(props map[string]string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	for k, v := range props {
		switch {
		case k == "acks" && v == "all":
			opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		case k == "enable.idempotence" && v == "false":
			opts = append(opts, kgo.DisableIdempotentWrite())
		default:
			return nil, fmt.Errorf("producer setting %s=%s not mapped to franz-go", k, v)
		}
	}
	return opts, nil
}

// connection is how every client of the step reaches the brokers: the seeds, and TLS and SASL
// when the matrix asks for them.
func connection(a interop.MatrixArgs) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(a.Bootstrap...)}
	s := a.Security
	if s.TLS() {
		cfg, err := s.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if s.SASL() {
		var m sasl.Mechanism
		switch s.Mechanism {
		case "PLAIN":
			m = plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("SASL mechanism %q not mapped to franz-go", s.Mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func run(ctx context.Context, a interop.MatrixArgs, r *interop.MatrixResult) error {
	conn, err := connection(a)
	if err != nil {
		return err
	}
	// A client of the step: the connection's options, then the step's.
	newClient := func(opts ...kgo.Opt) (*kgo.Client, error) {
		return kgo.NewClient(append(slices.Clip(conn), opts...)...)
	}
	switch a.Step {
	case "create":
		cl, err := newClient()
		if err != nil {
			return err
		}
		defer cl.Close()
		created, err := kadm.NewClient(cl).CreateTopics(ctx, int32(a.N), -1, nil, a.Topic)
		if err != nil {
			return err
		}
		for _, t := range created {
			if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
				return t.Err
			}
		}
		return nil
	case "produce":
		opts, err := producerOpts(a.Props)
		if err != nil {
			return err
		}
		cl, err := newClient(append(opts, kgo.DefaultProduceTopic(a.Topic))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		recs := make([]*kgo.Record, 0, a.N)
		for i := 0; i < a.N; i++ {
			recs = append(recs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
		r.Produced = a.N
		return nil
	case "consume":
		cl, err := newClient(
			kgo.ConsumerGroup(a.Group),
			kgo.ConsumeTopics(a.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
		)
		if err != nil {
			return err
		}
		defer cl.Close()
		var processed []*kgo.Record
		r.Keys = []string{}
		for len(processed) < a.N {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("consumed %d of %d records in %s", len(processed), a.N, interop.MatrixTimeout)
			}
			if err := fetches.Err(); err != nil {
				return err
			}
			fetches.EachRecord(func(rec *kgo.Record) {
				if len(processed) < a.N {
					processed = append(processed, rec)
					r.Keys = append(r.Keys, string(rec.Key))
				}
			})
		}
		if err := cl.CommitRecords(ctx, processed...); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		cl.LeaveGroup()
		return nil
	case "describe":
		cl, err := newClient()
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		r.Check("list topics", func() error {
			t, err := adm.ListTopics(ctx)
			if err != nil {
				return err
			}
			if !t.Has(a.Topic) {
				return fmt.Errorf("%s not listed", a.Topic)
			}
			return nil
		})
		r.Check("describe topic", func() error {
			t, err := adm.ListTopics(ctx, a.Topic)
			if err != nil {
				return err
			}
			d := t[a.Topic]
			if d.Err != nil {
				return d.Err
			}
			if len(d.Partitions) == 0 {
				return errors.New("no partitions")
			}
			return nil
		})
		r.Check("describe cluster", func() error {
			m, err := adm.BrokerMetadata(ctx)
			if err != nil {
				return err
			}
			if len(m.Brokers) == 0 {
				return errors.New("no brokers")
			}
			return nil
		})
		r.Check("list groups", func() error {
			g, err := adm.ListGroups(ctx)
			if err != nil {
				return err
			}
			if _, ok := g[a.Group]; !ok {
				return fmt.Errorf("%s not listed", a.Group)
			}
			return nil
		})
		r.Check("describe group", func() error {
			g, err := adm.DescribeGroups(ctx, a.Group)
			if err != nil {
				return err
			}
			d := g[a.Group]
			if d.Err != nil {
				return d.Err
			}
			if d.State != "Empty" {
				return fmt.Errorf("state %q", d.State)
			}
			return nil
		})
		return nil
	}
	return fmt.Errorf("unknown step %s", a.Step)
}
