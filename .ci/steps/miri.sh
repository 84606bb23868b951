#!/usr/bin/env bash
# Step miri: aura-core's unit tests (simulated kernel, no syscalls) under Miri,
# on nightly, in a separate target dir (target/miri).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-symbolic-alignment-check"

header "miri: MIRIFLAGS=\"$MIRIFLAGS\" cargo +nightly miri test -p aura-core"

ensure_nightly_component miri rust-src ||
    skip "miri could not be installed: 'rustup component add --toolchain nightly miri rust-src' failed (or no nightly toolchain)"

run cargo +nightly miri setup
echo "+ MIRIFLAGS=\"$MIRIFLAGS\" cargo +nightly miri test -p aura-core --target-dir target/miri"
cargo +nightly miri test -p aura-core --target-dir target/miri
echo "miri: ok"
