#!/usr/bin/env bash
# Step doc: rustdoc for the workspace with warnings (broken links etc.) denied.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

header "doc: RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps"

echo "+ RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
echo "doc: ok"
