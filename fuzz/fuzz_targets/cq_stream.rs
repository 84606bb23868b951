//! Fuzz target: a program of ring operations and injected CQEs against a simulated kernel
//! (see `aura_core::fuzzing::cq_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aura_core::fuzzing::cq_stream(data));
