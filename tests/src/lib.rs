//! Shared helpers for aura's integration tests (temporary files, skip reporting).
