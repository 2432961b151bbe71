//! Consumer group coordinator core (I/O-free).
