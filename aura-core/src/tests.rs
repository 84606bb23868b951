//! Unit tests of the ring against the simulated kernel (placeholder: being written).
