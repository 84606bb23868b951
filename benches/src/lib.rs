//! Helpers shared by aura's benchmarks.
