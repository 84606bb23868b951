//! Fuzz target: the AIMD controller with fuzzed options, completions, submits and ticks whose clock
//! stalls, jumps or runs backwards (see `aura_core::fuzzing::aimd`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aura_core::fuzzing::aimd(data));
