//! PBFT: Byzantine-fault-tolerant total order (being built).
