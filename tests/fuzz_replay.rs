//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through aura-core's fuzz entry
//! points on stable, plus the worst inputs we know of as unit tests.
//!
//! A failing entry point panics with its invariant; the file name is printed first, so the input
//! can be re-run with `cargo +nightly fuzz run <target> <file>`.

use std::fs;
use std::path::{Path, PathBuf};

use aura_core::fuzzing::{cq_stream, sqe_build};

/// `fuzz/corpus`, next to this package.
fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `entry` on every file of `fuzz/corpus/<target>/`; returns how many it replayed.
fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        eprintln!("replaying {}", f.display());
        entry(&data);
    }
    println!("{target}: replayed {} corpus files", files.len());
    assert!(
        !files.is_empty(),
        "no corpus files in {}: nothing was replayed",
        dir.display()
    );
    files.len()
}

#[test]
fn replay_cq_stream_corpus() {
    replay("cq_stream", cq_stream);
}

#[test]
fn replay_sqe_build_corpus() {
    replay("sqe_build", sqe_build);
}

/// Every entry point, on one input.
fn all(data: &[u8]) {
    cq_stream(data);
    sqe_build(data);
}

#[test]
fn empty_input() {
    all(&[]);
}

#[test]
fn all_ones() {
    for len in [1, 2, 5, 6, 64, 4096] {
        all(&vec![0xff; len]);
    }
}

#[test]
fn all_zeros_4k() {
    all(&[0; 4096]);
}

#[test]
fn every_single_byte() {
    for b in 0..=u8::MAX {
        all(&[b]);
        all(&[b; 3]);
    }
}

/// cq_stream opcodes of a detached kernel (see `aura_core::fuzzing::cq_stream`).
mod detached {
    pub const NOP: u8 = 0;
    pub const SUBMIT: u8 = 6;
    pub const STEP: u8 = 8;
    pub const INJECT: u8 = 11;
    pub const REAP_ALL: [u8; 2] = [12, 0];
    /// Header: detached, CQ of 4, SQ of 4, unbounded overflow list.
    pub const HEADER: [u8; 5] = [0x01, 0x03, 0x03, 0, 0];
}

/// An injection of `user_data` given in full (selector 0, then an 8-byte value), with edge `res`
/// and `flags`: res selector 2 is `i32::MIN`, 3 `i32::MAX`; flags selector 2 is `u32::MAX`.
fn inject_raw(user_data: u64, res_sel: u8, flags_sel: u8) -> Vec<u8> {
    let mut b = vec![detached::INJECT, 0, 9];
    b.extend_from_slice(&user_data.to_le_bytes());
    b.extend_from_slice(&[res_sel, flags_sel]);
    b
}

#[test]
fn cq_stream_injects_extreme_user_data() {
    use detached::*;
    let mut p = HEADER.to_vec();
    p.extend_from_slice(&[NOP, NOP, SUBMIT, STEP]);
    // u64::MAX (the reserved user_data: never surfaces), 0, a live-looking token (slot 0,
    // generation 1: turned into a never-live one by the harness), and garbage.
    for ud in [
        u64::MAX,
        0,
        1 << 32,
        0x0000_0002_0000_0001,
        0xdead_beef_0000_0000,
    ] {
        p.extend(inject_raw(ud, 2, 2));
        p.extend(inject_raw(ud, 3, 0));
    }
    p.extend_from_slice(&REAP_ALL);
    cq_stream(&p);
}

#[test]
fn cq_stream_injects_duplicates_of_completed_requests() {
    use detached::*;
    let mut p = HEADER.to_vec();
    // Complete two requests, then inject duplicates of their user_data (selector 1), reusing the
    // slots in between so the duplicates carry an old generation.
    p.extend_from_slice(&[NOP, NOP, SUBMIT, STEP, REAP_ALL[0], REAP_ALL[1]]);
    for sel in [1u8, 6, 11] {
        p.extend_from_slice(&[INJECT, sel, 2, 2]);
    }
    p.extend_from_slice(&[NOP, NOP, SUBMIT, STEP]);
    p.extend_from_slice(&[INJECT, 1, 3, 2, INJECT, 6, 0, 0]);
    p.extend_from_slice(&REAP_ALL);
    p.extend_from_slice(&[INJECT, 1, 2, 2, INJECT, 2, 3, 2]);
    cq_stream(&p);
}

#[test]
fn cq_stream_injects_into_a_full_cq() {
    use detached::*;
    // CQ of 1: injected CQEs overflow behind real ones and must come out in order, unlost.
    let mut p = vec![0x01, 0x00, 0x07, 0, 0];
    p.extend_from_slice(&[NOP, NOP, NOP, SUBMIT, STEP]);
    p.extend(inject_raw(u64::MAX, 2, 2));
    p.extend(inject_raw(0, 3, 2));
    p.extend(inject_raw(7 << 40, 2, 0));
    p.extend_from_slice(&REAP_ALL);
    cq_stream(&p);
}
