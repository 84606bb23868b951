//! Fuzz target: BFFIO's job-file and command-line parser, then option building and the I/O
//! sequence of each job (see `bffio::fuzz_parse`; input = job file, `\0\0`, NUL-separated args).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bffio::fuzz_parse(data));
