//! Replays the committed corpus of the `capi_bad_input` fuzz target (`fuzz/corpus/capi_bad_input/`)
//! on stable, plus a few shaped inputs.

use std::path::Path;

fn replay_dir() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/capi_bad_input");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("corpus file");
        aura::fuzzing::bad_input_sequence(&data);
    }
    files.len()
}

#[test]
fn replay_capi_bad_input_corpus() {
    let n = replay_dir();
    println!("capi_bad_input: replayed {n} corpus files");
    assert!(n > 0, "no corpus files: nothing was replayed");
}

#[test]
fn shaped_inputs() {
    aura::fuzzing::bad_input_sequence(&[]);
    aura::fuzzing::bad_input_sequence(&[0xff; 512]);
    aura::fuzzing::bad_input_sequence(&[0; 512]);
    // Every call kind in turn on the default small engine.
    let mut v = vec![0u8];
    for op in 0..24u8 {
        v.extend_from_slice(&[1, 7, 0, 1, 2, 0, op, 3, 1, 0, 2, 1, 0]);
    }
    aura::fuzzing::bad_input_sequence(&v);
}
