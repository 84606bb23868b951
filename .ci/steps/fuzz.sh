#!/usr/bin/env bash
# Step fuzz:
#  (a) on stable: replay the committed corpus through the fuzz_replay test
#      of aura-tests (tests/fuzz_replay.rs);
#  (b) if fuzz/ exists: with nightly + cargo-fuzz, for each fuzz target,
#      replay its corpus (-runs=0) then fuzz it for AURA_FUZZ_SECONDS
#      (default 20) seconds. The corpus is copied to a temp dir first, so new
#      entries found while fuzzing don't dirty the repository.
# The step is reported as skipped if a part could not run and nothing failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FUZZ_SECONDS="${AURA_FUZZ_SECONDS:-20}"

header "fuzz: corpus replay on stable + cargo fuzz (replay, then ${FUZZ_SECONDS}s per target) on nightly"

failed=0
ran=0

# ---- (a) corpus replay on stable ------------------------------------------
echo "--- fuzz (a): corpus replay on stable"
if [[ -f tests/fuzz_replay.rs ]]; then
    ran=1
    run cargo test -p aura-tests --test fuzz_replay || {
        echo "FAIL: fuzz_replay"
        failed=1
    }
else
    echo "(tests/fuzz_replay.rs not present: part (a) not run)"
fi

# Skip the rest; but a failure of part (a) is a failure, never a skip.
skip_or_fail() {
    if ((failed)); then
        echo "fuzz (b) could not run: $*"
        echo "fuzz: FAILED"
        exit 1
    fi
    skip "$*"
}

# ---- (b) cargo fuzz on nightly ----------------------------------------------
echo "--- fuzz (b): cargo fuzz"
if [[ ! -f fuzz/Cargo.toml ]]; then
    echo "(fuzz/Cargo.toml not present: part (b) not run)"
    if ((ran == 0)); then
        skip "neither tests/fuzz_replay.rs nor fuzz/Cargo.toml present"
    fi
    if ((failed)); then
        echo "fuzz: FAILED"
        exit 1
    fi
    echo "fuzz: ok"
    exit 0
fi

if ! rustc +nightly --version >/dev/null 2>&1; then
    skip_or_fail "no usable nightly toolchain for cargo fuzz"
fi
ensure_cargo_fuzz || skip_or_fail "cargo-fuzz could not be installed (cargo install cargo-fuzz failed)"

targets_out="$(cargo +nightly fuzz list)" || {
    echo "FAIL: cargo +nightly fuzz list"
    exit 1
}
targets=()
while IFS= read -r t; do
    t="${t//[[:space:]]/}"
    if [[ -n "$t" ]]; then
        targets+=("$t")
    fi
done <<<"$targets_out"
if ((${#targets[@]} == 0)); then
    echo "FAIL: cargo fuzz list shows no fuzz targets in fuzz/"
    exit 1
fi
echo "fuzz targets: ${targets[*]}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/aura-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Build all targets once (same default flags as `cargo fuzz run`).
run cargo +nightly fuzz build || {
    echo "FAIL: cargo +nightly fuzz build"
    echo "fuzz: FAILED"
    exit 1
}

for t in "${targets[@]}"; do
    corpus="$WORK/corpus/$t"
    mkdir -p "$corpus"
    if [[ -d "fuzz/corpus/$t" ]]; then
        cp -R "fuzz/corpus/$t/." "$corpus/"
    else
        echo "(no committed corpus in fuzz/corpus/$t: starting from an empty one)"
    fi
    n=$(find "$corpus" -type f | wc -l)
    echo "--- fuzz target $t: replaying $n corpus entries"
    if ! run cargo +nightly fuzz run "$t" "$corpus" -- -runs=0; then
        echo "FAIL: $t: corpus replay"
        failed=1
        continue
    fi
    echo "--- fuzz target $t: fuzzing for ${FUZZ_SECONDS}s"
    if ! run cargo +nightly fuzz run "$t" "$corpus" -- -max_total_time="$FUZZ_SECONDS"; then
        echo "FAIL: $t: fuzzing found a failure (see the artifact path above, under fuzz/artifacts/$t/)"
        failed=1
    fi
done

if ((failed)); then
    echo "fuzz: FAILED"
    exit 1
fi
echo "fuzz: ok (${#targets[@]} target(s))"
