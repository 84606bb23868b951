//! Helpers shared by aura's benchmarks.

pub mod adaptive;

/// SQ entries of every ring the NOP-rate benchmark sets up (both libraries).
pub const NOP_RING_ENTRIES: u32 = 256;

/// Batch sizes of the NOP-rate benchmark: NOPs pushed per `submit_and_wait` round.
pub const NOP_BATCHES: [u32; 4] = [1, 8, 32, 128];

/// aura's setup parameters for the NOP-rate benchmark: the defaults (CLAMP | NO_SQARRAY), or with
/// `tuned` also COOP_TASKRUN, SINGLE_ISSUER and DEFER_TASKRUN (each dropped where unsupported).
pub fn nop_params(tuned: bool) -> aura_core::Params {
    let p = aura_core::Params::new();
    if tuned {
        p.coop_taskrun(true).single_issuer(true).defer_taskrun(true)
    } else {
        p
    }
}
