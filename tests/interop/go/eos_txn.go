package interop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The parts of the exactly-once programs that do not depend on the client library: their
// main, and the scenarios that only begin, write, commit and abort transactions (fence,
// txn-open, txn-commit), written once against TxnProducer.

// TxnProducer is one client library's transactional producer (-txn-id, -txn-timeout,
// acks=all), writing to -topic.
type TxnProducer interface {
	Begin() error
	// Produce writes the values prefix-from .. prefix-(to-1) (key and value alike) to
	// partition 0 and waits for their acknowledgements.
	Produce(ctx context.Context, prefix string, from, to int) error
	// ProduceOne writes one value to partition 0 and returns the client's own error for it.
	ProduceOne(ctx context.Context, value string) error
	Commit(ctx context.Context) error
	Abort(ctx context.Context) error
	// Explain is err as the scenario reports it (sarama adds the producer's transaction
	// status).
	Explain(err error) string
	// IsFenced says whether err (or the producer's state after it) is the client's word for a
	// producer fenced by a newer epoch.
	IsFenced(err error) bool
	Close() error
}

// EosClient is what a client library brings to its exactly-once program.
type EosClient struct {
	// Name is the report's client; Module the Go module whose version the report gives.
	Name   string
	Module string
	// NewTxnProducer makes a transactional producer from the arguments.
	NewTxnProducer func(a EosArgs) (TxnProducer, error)
	// Run runs the subcommands that use the client in its own way: create, idempotent, ctp,
	// metadata and read.
	Run func(ctx context.Context, a EosArgs, r *EosReport, step func(string, ...any)) error
}

// EosMain is an exactly-once program's main: it reads the arguments, runs the subcommand
// within -timeout, prints the report and exits non-zero when it failed.
func EosMain(c EosClient) {
	start := time.Now()
	a := ParseEosArgs()
	r := &EosReport{Client: c.Name, Version: ModuleVersion(c.Module), Scenario: a.Scenario, Steps: []string{}}
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	step := func(format string, args ...any) { r.Step(start, format, args...) }
	var err error
	switch a.Scenario {
	case "fence":
		err = fence(ctx, a, r, step, c.NewTxnProducer)
	case "txn-open":
		err = txnOpen(ctx, a, r, step, c.NewTxnProducer)
	case "txn-commit":
		err = txnCommit(ctx, a, r, step, c.NewTxnProducer)
	default:
		err = c.Run(ctx, a, r, step)
	}
	r.Emit(start, err)
}

// produceValues writes prefix-from .. prefix-(to-1) and counts them as produced.
func produceValues(ctx context.Context, p TxnProducer, prefix string, from, to int, r *EosReport) error {
	if err := p.Produce(ctx, prefix, from, to); err != nil {
		return err
	}
	r.Produced += to - from
	return nil
}

// txnCommit: a new producer commits -records values "<prefix>-<i>".
func txnCommit(ctx context.Context, a EosArgs, r *EosReport, step func(string, ...any), newProducer func(EosArgs) (TxnProducer, error)) error {
	p, err := newProducer(a)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Begin(); err != nil {
		return err
	}
	if err := produceValues(ctx, p, a.Prefix, 0, a.Records, r); err != nil {
		return err
	}
	step("produced %d records", a.Records)
	if err := p.Commit(ctx); err != nil {
		r.CommitErr = err.Error()
		return fmt.Errorf("commit: %w", err)
	}
	r.Committed = true
	step("committed")
	return nil
}

// fence runs producer A's transaction, fences it with producer B, and checks that A can
// neither write nor commit any more.
func fence(ctx context.Context, a EosArgs, r *EosReport, step func(string, ...any), newProducer func(EosArgs) (TxnProducer, error)) error {
	// begin starts producer A or B of -txn-id and writes "<prefix>-a-<i>" or "<prefix>-b-<i>"
	// in a transaction. B's InitProducerId fences A: sarama sends it when the producer is
	// made, franz-go before its first write.
	begin := func(name string) (TxnProducer, error) {
		p, err := newProducer(a)
		if err != nil {
			return nil, fmt.Errorf("producer %s: %w", name, err)
		}
		step("producer %s (transactional id %s) started", name, a.TxnID)
		err = p.Begin()
		if err == nil {
			err = produceValues(ctx, p, a.Prefix+"-"+strings.ToLower(name), 0, a.Records, r)
		}
		if err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("producer %s: %w", name, err)
		}
		step("producer %s wrote %d records in its transaction", name, a.Records)
		return p, nil
	}
	first, err := begin("A")
	if err != nil {
		return err
	}
	defer first.Close()
	second, err := begin("B")
	if err != nil {
		return err
	}
	defer second.Close()

	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	aerr := first.ProduceOne(actx, EosValue(a.Prefix+"-a", -1))
	cancel()
	if aerr == nil {
		return errors.New("producer A wrote a record after it was fenced")
	}
	r.AfterFenceErr = aerr.Error()
	step("producer A's write after the fence failed: %s", first.Explain(aerr))
	cerr := first.Commit(ctx)
	if cerr == nil {
		return errors.New("producer A committed after it was fenced")
	}
	r.CommitErr = cerr.Error()
	r.Fenced = first.IsFenced(aerr) || first.IsFenced(cerr)
	step("producer A's commit failed: %s (fenced: %v)", first.Explain(cerr), r.Fenced)

	if err := second.Commit(ctx); err != nil {
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
// file appears, finishes and commits it; when that fails, the same producer tries one more
// transaction.
func txnOpen(ctx context.Context, a EosArgs, r *EosReport, step func(string, ...any), newProducer func(EosArgs) (TxnProducer, error)) error {
	p, err := newProducer(a)
	if err != nil {
		return err
	}
	if err := p.Begin(); err != nil {
		return err
	}
	half := a.Records
	if a.Resume != "" {
		half = a.Records / 2
	}
	if err := produceValues(ctx, p, a.Prefix, 0, half, r); err != nil {
		return err
	}
	step("wrote %d records in an open transaction", half)
	a.WriteProgress("open")
	if a.Resume == "" {
		// Leave without ending the transaction or closing the producer: the producer is
		// gone, as after a crash.
		step("left the transaction open")
		return nil
	}
	deadline, _ := ctx.Deadline()
	if err := a.WaitResume(deadline); err != nil {
		return err
	}
	step("resuming")
	if err := produceValues(ctx, p, a.Prefix, half, a.Records, r); err != nil {
		r.CommitErr = err.Error()
		step("the second half failed: %s", p.Explain(err))
		step("abort: %v", p.Abort(ctx))
		again(ctx, p, a, r, step)
		return p.Close()
	}
	step("wrote the other %d records", a.Records-half)
	if err := p.Commit(ctx); err != nil {
		r.CommitErr = err.Error()
		step("commit failed: %s", p.Explain(err))
		again(ctx, p, a, r, step)
		return p.Close()
	}
	r.Committed = true
	step("committed")
	return p.Close()
}

// again tries one more transaction ("<prefix>-again-<i>") on a producer whose last one failed.
func again(ctx context.Context, p TxnProducer, a EosArgs, r *EosReport, step func(string, ...any)) {
	err := p.Begin()
	if err == nil {
		err = produceValues(ctx, p, a.Prefix+"-again", 0, a.Records, r)
		if err == nil {
			err = p.Commit(ctx)
		} else {
			_ = p.Abort(ctx)
		}
	}
	if err != nil {
		r.RecoverErr = p.Explain(err)
		step("the next transaction failed: %s", r.RecoverErr)
		return
	}
	r.Recovered = true
	step("the next transaction committed")
}
