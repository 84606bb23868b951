#!/usr/bin/env bash
# Step test: the workspace's unit, integration and doc tests on stable.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

header "test: cargo test --workspace"

run cargo test --workspace
echo "test: ok"
