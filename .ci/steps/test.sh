#!/usr/bin/env bash
# Step test: the workspace's unit, integration and doc tests on stable. Live-kernel tests that
# cannot run here (a feature the kernel lacks) log a line to AURA_SKIP_LOG; they are counted and
# listed after the run, and never counted as passes of their checks.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

header "test: cargo test --workspace"

AURA_SKIP_LOG="$(pwd)/target/aura-skips.log"
export AURA_SKIP_LOG
mkdir -p target
rm -f "$AURA_SKIP_LOG"
# promtool (Debian package prometheus) for tests/prometheus.rs.
command -v promtool >/dev/null 2>&1 || ensure_apt prometheus || echo "test: promtool could not be installed; the promtool check will print skipped"
# gcc/g++/make (build-essential), pkg-config and valgrind for tests/capi.rs (the C and C++
# programs against libaura, the install check, the valgrind run).
for tool in gcc g++ make pkg-config valgrind; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        ensure_apt build-essential pkg-config valgrind || echo "test: C toolchain could not be installed; tests/capi.rs will print skipped"
        break
    fi
done
run cargo test --workspace
if [[ -s "$AURA_SKIP_LOG" ]]; then
    echo "test: $(wc -l < "$AURA_SKIP_LOG") live-kernel check(s) skipped on this machine:"
    sed 's/^/  /' "$AURA_SKIP_LOG"
else
    echo "test: 0 live-kernel checks skipped"
fi
echo "test: ok"
