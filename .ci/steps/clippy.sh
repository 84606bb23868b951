#!/usr/bin/env bash
# Step clippy: lints for every target of every workspace member, warnings denied.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

header "clippy: cargo clippy --workspace --all-targets -- -D warnings"

if ! cargo clippy --version >/dev/null 2>&1; then
    ensure_component "" clippy || {
        echo "error: clippy is not available"
        exit 1
    }
fi

run cargo clippy --workspace --all-targets -- -D warnings
echo "clippy: ok"
