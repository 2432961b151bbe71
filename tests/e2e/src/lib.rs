//! End-to-end test harness: starts the real `gregor` binary on an ephemeral port.
