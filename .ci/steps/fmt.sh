#!/usr/bin/env bash
# Step fmt: rustfmt check of the workspace and of the two separate workspaces
# (fuzz/ and examples/nostd-cat/) when they exist.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

header "fmt: cargo fmt --check (workspace, fuzz, examples/nostd-cat)"

if ! cargo fmt --version >/dev/null 2>&1; then
    ensure_component "" rustfmt || {
        echo "error: rustfmt is not available"
        exit 1
    }
fi

failed=0
run cargo fmt --all --check || failed=1
for manifest in fuzz/Cargo.toml examples/nostd-cat/Cargo.toml; do
    if [[ -f "$manifest" ]]; then
        run cargo fmt --check --manifest-path "$manifest" || failed=1
    else
        echo "($manifest not present, not checked)"
    fi
done

if ((failed)); then
    echo "fmt: FAILED (run 'cargo fmt --all' and the same with --manifest-path for fuzz/ and examples/nostd-cat/)"
    exit 1
fi
echo "fmt: ok"
