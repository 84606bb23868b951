//! Fuzz target: arbitrary sequences of C API calls with arbitrary arguments on a live engine over
//! a temporary file — no crash, no hang, no leak, every accepted request completes exactly once
//! (see `aura::fuzzing::bad_input_sequence`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aura::fuzzing::bad_input_sequence(data));
