package interop

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// MatrixTimeout bounds each step of the client matrix.
const MatrixTimeout = 60 * time.Second

// MatrixArgs are the client matrix's positional arguments, the same for every driver
// (tests/e2e/python/matrix_client.py describes them):
//
//	STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...] [--OPTION=VALUE ...]
type MatrixArgs struct {
	Step string
	// Bootstrap lists the seed brokers (the argument is comma-separated, host:port each).
	Bootstrap []string
	Topic     string
	Group     string
	N         int
	Props     map[string]string
	// Security is how every client of the step connects (the --OPTION=VALUE arguments).
	Security MatrixSecurity
}

// MatrixSecurity are the matrix's connection options, named as librdkafka names them:
// --security.protocol, --sasl.mechanism, --sasl.username, --sasl.password, --ssl.ca.location.
// The zero value is PLAINTEXT.
type MatrixSecurity struct {
	Protocol  string
	Mechanism string
	User      string
	Password  string
	// CAFile is the PEM file of the CA that signed the broker's certificate.
	CAFile string
}

// TLS says whether the protocol runs over TLS (SSL, SASL_SSL).
func (s MatrixSecurity) TLS() bool { return strings.HasSuffix(s.Protocol, "SSL") }

// SASL says whether the protocol logs in with SASL (SASL_PLAINTEXT, SASL_SSL).
func (s MatrixSecurity) SASL() bool { return strings.HasPrefix(s.Protocol, "SASL_") }

// TLSConfig trusts CAFile (the system's roots when there is none).
func (s MatrixSecurity) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", s.CAFile)
		}
	}
	return cfg, nil
}

// ParseMatrixArgs reads the positional arguments, exiting with a message when they are wrong.
func ParseMatrixArgs() MatrixArgs {
	if len(os.Args) < 6 {
		fmt.Fprintln(os.Stderr, "usage: STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...]")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fmt.Fprintln(os.Stderr, "N:", err)
		os.Exit(2)
	}
	a := MatrixArgs{Step: os.Args[1], Bootstrap: strings.Split(os.Args[2], ","), Topic: os.Args[3], Group: os.Args[4], N: n, Props: map[string]string{}}
	for _, kv := range os.Args[6:] {
		option, isOption := strings.CutPrefix(kv, "--")
		if !isOption {
			k, v, _ := strings.Cut(kv, "=")
			a.Props[k] = v
			continue
		}
		k, v, _ := strings.Cut(option, "=")
		switch k {
		case "security.protocol":
			a.Security.Protocol = v
		case "sasl.mechanism":
			a.Security.Mechanism = v
		case "sasl.username":
			a.Security.User = v
		case "sasl.password":
			a.Security.Password = v
		case "ssl.ca.location":
			a.Security.CAFile = v
		default:
			fmt.Fprintln(os.Stderr, "unknown option", kv)
			os.Exit(2)
		}
	}
	return a
}

// ModuleVersion is the version of a module this program was built with, e.g. v1.22.3.
func ModuleVersion(path string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "unknown"
}

// MatrixResult is the JSON line every step prints.
type MatrixResult struct {
	OK       bool              `json:"ok"`
	Version  string            `json:"version"`
	Error    string            `json:"error,omitempty"`
	Produced int               `json:"produced,omitempty"`
	Keys     []string          `json:"keys,omitempty"`
	Steps    map[string]string `json:"steps,omitempty"`
}

// Check runs one named admin check into r.Steps, keeping the first failure as r.Error.
func (r *MatrixResult) Check(name string, f func() error) {
	if r.Steps == nil {
		r.Steps = map[string]string{}
	}
	if err := f(); err != nil {
		r.Steps[name] = err.Error()
		if r.Error == "" {
			r.Error = name + ": " + err.Error()
		}
		return
	}
	r.Steps[name] = "ok"
}

// Emit prints the result; err (when not nil) makes it a failure.
func (r *MatrixResult) Emit(err error) {
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	r.OK = r.Error == ""
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
