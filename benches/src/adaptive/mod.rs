//! The adaptive-value benchmark's parts (`src/bin/adaptive_value.rs` drives them): a closed-loop
//! client over aura's [`aura_std::Engine`] on a real file, a background writer as the noisy
//! neighbour, an exact-enough latency histogram, and SVG time-series charts.

pub mod file;
pub mod hist;
pub mod plot;
pub mod workload;
