#!/usr/bin/env bash
# Step miri: aura-core's unit tests (simulated kernel, no syscalls) under Miri,
# on nightly, in a separate target dir (target/miri), and aura-std's buffer pool (the
# Engine's other unsafe code that runs without syscalls).
# The controller and device-model tests (aimd::, sim::device, sim::scenario) are
# skipped here: they are safe integer code (no unsafe, nothing Miri checks that the
# normal test run does not) and simulate millions of completions, hours under Miri.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-symbolic-alignment-check"

header "miri: MIRIFLAGS=\"$MIRIFLAGS\" cargo +nightly miri test -p aura-core"

ensure_nightly_component miri rust-src ||
    skip "miri could not be installed: 'rustup component add --toolchain nightly miri rust-src' failed (or no nightly toolchain)"

run cargo +nightly miri setup
skips=(--skip aimd:: --skip sim::device --skip sim::scenario --skip fuzzing::)
echo "+ MIRIFLAGS=\"$MIRIFLAGS\" cargo +nightly miri test -p aura-core --target-dir target/miri -- ${skips[*]}"
cargo +nightly miri test -p aura-core --target-dir target/miri -- "${skips[@]}"
echo "+ cargo +nightly miri test -p aura-std --lib --target-dir target/miri -- buffer:: request::"
cargo +nightly miri test -p aura-std --lib --target-dir target/miri -- buffer:: request::
echo "miri: ok"
