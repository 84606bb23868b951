#!/usr/bin/env bash
# Step loom: the loom model tests (tests/loom_*.rs of the aura-tests
# package), built with --cfg loom in a separate target dir (target/loom) so
# they don't invalidate the normal build.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"

header "loom: RUSTFLAGS=\"--cfg loom\" cargo test --release -p aura-tests --test 'loom_*' (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"

# cargo does not glob --test names: enumerate the files.
tests=()
shopt -s nullglob
for f in tests/loom_*.rs; do
    name="$(basename "$f" .rs)"
    tests+=(--test "$name")
done
shopt -u nullglob
if ((${#tests[@]} == 0)); then
    skip "no loom tests (tests/loom_*.rs) present"
fi

start=$SECONDS
rc=0
echo "+ RUSTFLAGS=\"--cfg loom\" LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS cargo test --release -p aura-tests ${tests[*]} --target-dir target/loom"
RUSTFLAGS="--cfg loom" cargo test --release -p aura-tests "${tests[@]}" --target-dir target/loom || rc=$?
echo "loom: finished in $((SECONDS - start))s with LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS (exit $rc)"
if ((rc != 0)); then
    echo "loom: FAILED"
    exit 1
fi
echo "loom: ok"
