package interop

import (
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
//	STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...]
type MatrixArgs struct {
	Step string
	// Bootstrap lists the seed brokers (the argument is comma-separated, host:port each).
	Bootstrap []string
	Topic     string
	Group     string
	N         int
	Props     map[string]string
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
		k, v, _ := strings.Cut(kv, "=")
		a.Props[k] = v
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
