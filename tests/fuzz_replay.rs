//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through aura-core's fuzz entry
//! points on stable, plus the worst inputs we know of as unit tests.
//!
//! A failing entry point panics with its invariant; the file name is printed first, so the input
//! can be re-run with `cargo +nightly fuzz run <target> <file>`.

use std::fs;
use std::path::{Path, PathBuf};

use aura_core::fuzzing::{aimd, cq_stream, sqe_build};

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

#[test]
fn replay_aimd_corpus() {
    replay("aimd", aimd);
}

/// Every entry point, on one input.
fn all(data: &[u8]) {
    cq_stream(data);
    sqe_build(data);
    aimd(data);
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

/// aimd inputs (see `aura_core::fuzzing::aimd`): five option bytes, then records.
mod aimd_program {
    /// max_in_flight 256, every other option default.
    pub const DEFAULTS: [u8; 5] = [7, 0, 0, 0, 0];
    /// max_in_flight = min_in_flight = u32::MAX (initial: the maximum), max_p99_ns = u64::MAX,
    /// batch threshold 65 536 (the largest accepted).
    pub const ALL_MAX: [u8; 6] = [9, 4, 0, 7, 7, 0];
    /// Latency selectors: not measured, 0 ns, u64::MAX, 80 µs, 11 ms.
    pub const LAT_NONE: u8 = 0;
    pub const LAT_ZERO: u8 = 1;
    pub const LAT_MAX: u8 = 2;
    pub const LAT_80US: u8 = 16;
    pub const LAT_11MS: u8 = 138;
    /// Bytes selectors: 0, u64::MAX, 4 KiB.
    pub const BYTES_ZERO: u8 = 0;
    pub const BYTES_MAX: u8 = 1;
    pub const BYTES_4K: u8 = 8;
    /// Time selectors (a `u32` or edge `u64` follows 2, 3 and 4).
    pub const T_STALL: u8 = 0;
    pub const T_BACK_U32: u8 = 2;
    pub const T_BACK_EDGE: u8 = 3;
    pub const T_FWD_EDGE: u8 = 4;
    pub const T_ABS_MAX: u8 = 5;
    pub const T_ABS_ZERO: u8 = 6;
    pub const T_10MS: u8 = 10;
    /// Edge selector of `u64::MAX` (after T_BACK_EDGE / T_FWD_EDGE).
    pub const EDGE_U64_MAX: u8 = 2;
    /// Pending selectors: 0, u32::MAX, growing by 17 per tick, 512.
    pub const P_ZERO: u8 = 0;
    pub const P_MAX: u8 = 1;
    pub const P_GROWTH: u8 = 5;
    pub const P_512: u8 = 13;

    pub fn burst(count: u16, lat: u8, bytes: u8) -> Vec<u8> {
        let [lo, hi] = count.to_le_bytes();
        vec![0, lo, hi, lat, bytes]
    }

    /// `times` (1 to 64) submits of `sqes` SQEs given in full.
    pub fn submit(times: u8, sqes: u32) -> Vec<u8> {
        let mut r = vec![1 | ((times - 1) << 2), 7];
        r.extend_from_slice(&sqes.to_le_bytes());
        r
    }

    pub fn tick(time: &[u8], pending: u8) -> Vec<u8> {
        let mut r = vec![2];
        r.extend_from_slice(time);
        r.push(pending);
        r
    }

    /// `ticks` (1 to 64) ticks of 10 ms against a device model (knee 0: none).
    pub fn run(ticks: u8, knee: u8, rate: u8, lat: u8, bytes: u8, pending: u8) -> Vec<u8> {
        vec![3 | ((ticks - 1) << 2), knee, rate, lat, bytes, pending]
    }
}

#[test]
fn aimd_refuses_invalid_options_and_survives_extreme_ones() {
    // max 0; min > max; initial > max; initial < min; batch threshold 65 537.
    for header in [
        &[0u8, 0, 0, 0, 0][..],
        &[4, 5, 0, 0, 0],
        &[4, 0, 5, 0, 0],
        &[4, 4, 3, 0, 0],
        &[7, 0, 0, 0, 7, 1],
    ] {
        let mut p = header.to_vec();
        p.extend(aimd_program::run(64, 20, 5, 16, 8, 13));
        aimd(&p);
    }
    // u32::MAX bounds everywhere (nothing to tune), and u32::MAX over a default minimum.
    use aimd_program::*;
    for header in [&ALL_MAX[..], &[9, 0, 0, 4, 2, 0]] {
        let mut p = header.to_vec();
        for _ in 0..4 {
            p.extend(run(64, 255, 16, LAT_80US, BYTES_MAX, P_MAX));
            p.extend(run(64, 255, 16, LAT_MAX, BYTES_MAX, P_GROWTH));
            p.extend(submit(64, u32::MAX));
        }
        aimd(&p);
    }
}

#[test]
fn aimd_extreme_completions() {
    use aimd_program::*;
    let mut p = DEFAULTS.to_vec();
    for (lat, bytes) in [
        (LAT_MAX, BYTES_MAX),
        (LAT_ZERO, BYTES_ZERO),
        (LAT_NONE, BYTES_MAX),
        (LAT_MAX, BYTES_4K),
    ] {
        p.extend(burst(4096, lat, bytes));
        p.extend(tick(&[T_10MS], P_MAX));
        p.extend(run(64, 20, 5, lat, bytes, P_512));
    }
    aimd(&p);
}

#[test]
fn aimd_clock_runs_backwards_and_jumps() {
    use aimd_program::*;
    let mut p = DEFAULTS.to_vec();
    // Engage and probe, then break the clock in every way while completions keep coming.
    p.extend(run(40, 20, 5, LAT_80US, BYTES_4K, P_512));
    let clocks: [&[u8]; 8] = [
        &[T_BACK_U32, 0x40, 0x4b, 0x4c, 0x00], // 5 ms back
        &[T_BACK_EDGE, EDGE_U64_MAX],          // to 0
        &[T_STALL],
        &[T_FWD_EDGE, EDGE_U64_MAX], // to u64::MAX: elapsed ~ u64::MAX
        &[T_10MS],                   // saturates: stalls at u64::MAX
        &[T_ABS_ZERO],
        &[T_ABS_MAX],
        &[T_ABS_ZERO],
    ];
    for time in clocks {
        p.extend(burst(100, LAT_80US, BYTES_4K));
        p.extend(tick(time, P_512));
        p.extend(run(12, 20, 5, LAT_80US, BYTES_4K, P_512));
    }
    aimd(&p);
}

#[test]
fn aimd_spikes_back_off_to_the_minimum_and_recover() {
    use aimd_program::*;
    let mut p = DEFAULTS.to_vec();
    p.extend(run(64, 20, 5, LAT_80US, BYTES_4K, P_512));
    p.extend(run(64, 20, 5, LAT_11MS, BYTES_4K, P_512));
    p.extend(run(64, 20, 5, LAT_80US, BYTES_4K, P_512));
    // Then the load goes away: back to PASSTHROUGH.
    p.extend(run(40, 20, 5, LAT_80US, BYTES_4K, P_ZERO));
    aimd(&p);
}

/// BFFIO's job-file + command-line parser (`bffio::fuzz_parse`) over its corpus, plus the worst
/// inputs: empty, NUL bytes only, a lone separator, invalid UTF-8, overflowing sizes.
#[cfg(not(loom))]
#[test]
fn replay_job_parser_corpus() {
    replay("job_parser", bffio::fuzz_parse);
    for input in [
        &b""[..],
        b"\0\0",
        b"\0\0\0\0\0",
        b"\xff\xff\xff",
        b"[a]\nbs=99999999999999999999k\n",
        b"[a]\nsize=1m\n\0\0--bs=18446744073709551615\0--iodepth=4294967296",
        b"[global]\n[\n",
    ] {
        bffio::fuzz_parse(input);
    }
}
