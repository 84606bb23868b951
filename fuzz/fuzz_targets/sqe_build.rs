//! Fuzz target: every SQE builder with fuzzed arguments, run through a simulated ring, and
//! fuzzed probe replies (see `aura_core::fuzzing::sqe_build`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aura_core::fuzzing::sqe_build(data));
