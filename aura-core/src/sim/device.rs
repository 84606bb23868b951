//! A deterministic, integer-only storage-device model stepped in simulated time, for running the
//! AIMD controller ([`crate::aimd`]) against a device whose knee is known.
//!
//! # The model
//!
//! A fluid queueing model. The device has `knee` parallel service slots, each serving one request
//! in `base_ns`:
//!
//! - capacity: `X_max = knee / base` (completions per ns; [`Device::max_iops_at`] per second);
//! - with `N` requests in flight, throughput `X(N) = min(N, knee_eff) / base`: linear in `N` up to
//!   the knee, flat beyond it;
//! - mean latency `L(N) = max(base, N / X_eff) = max(base, N × base / knee_eff)`: flat up to the
//!   knee, linear beyond it, so Little's law `N = X · L` holds at every depth (below the knee
//!   `N < knee` slots are busy and each request takes `base`; beyond it the `N − knee` extra
//!   requests wait in the device's queue).
//!
//! `knee_eff` is the profile's knee, reduced by a noisy neighbour (below).
//!
//! # Soft knee
//!
//! Real disks do not all have a sharp knee. A virtualised disk's throughput keeps growing,
//! ever more slowly, up to a depth of ~128 ([`virtio`]): each doubling past 32 buys 5–9 %. A
//! profile with a [`Profile::curve`] gives its throughput `X(N)` at some depths instead; `X` is
//! linear between them (and from 0 to the first), flat after the last, and the mean latency is
//! Little's law's `L(N) = N / X(N)`, so it grows with depth from the start. A noisy neighbour
//! scales `X` by the share it leaves (`knee_at` reports the curve's last depth, unscaled).
//!
//! Two further properties, off unless a profile sets them (the sharp presets do not, so their
//! runs are what they were before these existed):
//!
//! - **throughput jitter**: each [`EPISODE_NS`] (5 ms) episode runs at a rate drawn uniformly
//!   within ±[`Profile::rate_jitter_permille`] of `X(N)`, and each [`DRIFT_NS`] (100 ms) period
//!   at a further factor within ±[`Profile::rate_drift_permille`], so per-tick throughput is as
//!   noisy as a real disk's and a controller cannot judge a few-percent step from one tick, nor
//!   always from a few;
//! - **stall storms**: one episode in [`STORM_EVERY`] is a storm; in a storm, with more than
//!   [`Profile::stall_above`] requests in flight, [`Profile::stall_permille`] × [`STORM_EVERY`]
//!   of the completions are held for an extra `[stall_min_ns, stall_max_ns]`. The body of the
//!   distribution gives up the stalls' extra latency, so the mean stays `L(N)` and Little's law
//!   holds. This is the virtio disk's tail: multi-ms stalls, in bursts, only at high depth, so
//!   the P99 jumps while throughput still grows.
//!
//! # Completions per step
//!
//! [`Device::step`] holds `in_flight` constant over `dt_ns` and completes `X(N) · dt` requests,
//! keeping the fractional remainder in a carry (`min(N, knee_eff) · dt` slot-nanoseconds modulo
//! `base`), so a long run completes exactly `X(N) × time` on average, whatever the step size.
//!
//! A request in flight cannot complete twice, so a step completes at most `in_flight` requests;
//! the excess (and its carry) is dropped. That cap binds only when `dt_ns` is longer than a
//! service time (`dt > base`): with `dt ≤ base`, `min(N, knee) · dt / base ≤ N` already. The
//! scenario harness ([`super::scenario`]) therefore steps the device in sub-steps of at most the
//! smallest `base_ns` it may meet (and at most 1 ms), so the cap never distorts its throughput;
//! a caller stepping an 80 µs NVMe device by 1 ms would see it (12.5 service times per step, but
//! only `in_flight` completions). The caller replaces completed requests between steps.
//!
//! A device with nothing in flight loses its carry (an idle slot makes no progress).
//!
//! # Per-completion latency
//!
//! Each completion's latency is drawn around the step's mean `L = L(N)` with a seeded xorshift64*
//! generator, in integers. With `j = jitter_permille / 1000` and `t = tail_permille / 1000`:
//!
//! - with probability `1 − t`, a **body** sample, uniform in `[c·(1 − j), c·(1 + j)]`;
//! - with probability `t`, a **tail** sample, uniform from the body's top `c·(1 + j)` to `4L`;
//! - the body centre `c = L·(1 − 2t) / ((1 − t) + t·(1 + j)/2)` sits just below `L` so the tail
//!   is paid for: the overall mean is `L` (up to integer rounding), and Little's law holds for
//!   the latencies the caller measures.
//!
//! A stall sample (soft-knee profiles, above) is `L` plus a uniform extra, and the body centre
//! then also gives up the stalls' share: `c = (L·(1 − 2t − s) − s·extra) / ((1 − t − s) +
//! t·(1 + j)/2)` for a stall share `s` of mean extra `extra`.
//!
//! The tail starts where the body ends, so the density has no gap and a percentile in the tail
//! moves smoothly with the sample count (a tail starting at `2L` would make a tick's P99 jump
//! between the body's top and `2L` depending on whether the tick drew more or fewer than 1 %
//! tail samples). With `t` above 1 % the P99 lies in the tail, at `4L − (4L − c·(1 + j)) · 1 % /
//! t`: ≈ 1.65 × the mean for the NVMe and SATA presets (±20 %, 1.2 % tail), ≈ 1.7 × for the
//! disk (±30 %, 1.2 %), ≈ 3.2 × for network storage (±60 %, 3 %). The minimum is `c·(1 − j)`
//! (≈ 0.78 × `base` for NVMe), the maximum `4L`.
//!
//! # Events
//!
//! - [`Event::NoisyNeighbour`]: between `start_ns` (inclusive) and `end_ns` (exclusive) a
//!   neighbour takes `steal_permille` of the device: `knee_eff = round(knee × (1000 − steal) /
//!   1000)`, at least 1, so `X_eff = knee_eff / base` and, at the same in-flight count, the
//!   latency grows by Little's law. Overlapping neighbours add their steals (capped at 1000).
//! - [`Event::PhaseChange`]: from `at_ns` on the device behaves as another [`Profile`] (e.g. a
//!   sequential workload turning random: a different knee and base latency). The latest change
//!   whose `at_ns` has passed wins.
//!
//! A step uses the state at its start (`now_ns`).

use alloc::vec::Vec;

/// Nanoseconds per second.
const NS_PER_SEC: u64 = 1_000_000_000;

/// A device's behaviour: its knee, its unloaded service latency and its latency spread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// A short name, for reports.
    pub name: &'static str,
    /// Service latency of one request below the knee, in ns (0 counts as 1).
    pub base_ns: u64,
    /// Parallel service slots: the in-flight count beyond which throughput stops growing
    /// (0 counts as 1).
    pub knee: u32,
    /// Half-width of the body of the latency distribution, in ‰ of its centre (capped at 1000).
    pub jitter_permille: u32,
    /// Share of completions, in ‰, whose latency is a tail sample, from the body's top up to 4 ×
    /// the mean (capped at 333).
    pub tail_permille: u32,
    /// Bytes each request transfers.
    pub bytes_per_io: u64,
    /// A soft knee: the throughput (completions per second) at some depths, ascending, linear
    /// between them and flat after the last (see the [module docs](self)); empty: the sharp
    /// model of `knee` slots of `base_ns`. With a curve, `knee` is only reported (the depth of
    /// the last point) and `base_ns` is the latency at depth 1 (it sets the harness's sub-step).
    pub curve: &'static [(u32, u64)],
    /// Throughput jitter: each [`EPISODE_NS`] episode runs at a rate drawn uniformly within
    /// ± this many ‰ of the model's (0: none).
    pub rate_jitter_permille: u32,
    /// Throughput drift: each [`DRIFT_NS`] period runs at a further factor drawn uniformly
    /// within ± this many ‰ (0: none): the slow swings of a shared host, which a window of a
    /// few ticks cannot average out.
    pub rate_drift_permille: u32,
    /// Stalls: with more than this many requests in flight, some completions are held for
    /// several ms (0: never).
    pub stall_above: u32,
    /// The share of completions, in ‰, that a stall holds (averaged over episodes: only one
    /// episode in [`STORM_EVERY`] has stalls, with this share × [`STORM_EVERY`], at most 333 ‰).
    pub stall_permille: u32,
    /// A held completion's extra latency is uniform in `[stall_min_ns, stall_max_ns]`.
    pub stall_min_ns: u64,
    /// See [`Profile::stall_min_ns`].
    pub stall_max_ns: u64,
}

/// Length of a device episode (throughput jitter and stall storms are drawn per episode): 5 ms,
/// half a controller tick, so ticks differ the way a real disk's do.
pub const EPISODE_NS: u64 = 5_000_000;
/// Length of a drift period (see [`Profile::rate_drift_permille`]): 100 ms.
pub const DRIFT_NS: u64 = 100_000_000;
/// One episode in this many is a stall storm (stalls come in bursts on a virtualised disk).
pub const STORM_EVERY: u64 = 4;

/// The fields a sharp-knee profile leaves at zero (a base for `..SHARP` in profiles built
/// elsewhere, e.g. random ones in tests).
pub const SHARP: Profile = Profile {
    name: "",
    base_ns: 1,
    knee: 1,
    jitter_permille: 0,
    tail_permille: 0,
    bytes_per_io: KIB4,
    curve: &[],
    rate_jitter_permille: 0,
    rate_drift_permille: 0,
    stall_above: 0,
    stall_permille: 0,
    stall_min_ns: 0,
    stall_max_ns: 0,
};

/// 4 KiB, the block size of the random-I/O presets.
const KIB4: u64 = 4_096;

/// An NVMe SSD under 4 KiB random reads: knee 64, 80 µs, ±20 % jitter, 1.2 % tail
/// (800 000 IOPS at the knee; P99 ≈ 1.65 × the mean).
pub const fn nvme() -> Profile {
    Profile {
        name: "nvme",
        base_ns: 80_000,
        knee: 64,
        jitter_permille: 200,
        tail_permille: 12,
        ..SHARP
    }
}

/// The NVMe SSD in a phase with a quarter of the parallelism (knee 16, same 80 µs; e.g. a
/// sequential stream turning into a random or write-heavy mix that serialises on fewer dies):
/// 200 000 IOPS. The target of [`Event::PhaseChange`] in the phase-change scenario.
pub const fn nvme_knee16() -> Profile {
    Profile {
        name: "nvme-knee16",
        knee: 16,
        ..nvme()
    }
}

/// A SATA SSD under 4 KiB random reads: knee 32, 150 µs, ±20 % jitter, 1.2 % tail
/// (≈ 213 333 IOPS at the knee).
pub const fn sata_ssd() -> Profile {
    Profile {
        name: "sata",
        base_ns: 150_000,
        knee: 32,
        jitter_permille: 200,
        tail_permille: 12,
        ..SHARP
    }
}

/// A hard disk under 4 KiB random reads: knee 4 (what command queueing buys), 6 ms, ±30 %
/// jitter, 1.2 % tail (≈ 667 IOPS).
pub const fn hdd() -> Profile {
    Profile {
        name: "hdd",
        base_ns: 6_000_000,
        knee: 4,
        jitter_permille: 300,
        tail_permille: 12,
        ..SHARP
    }
}

/// Network block storage: knee 16, 500 µs, ±60 % jitter, 3 % tail (32 000 IOPS).
pub const fn network() -> Profile {
    Profile {
        name: "network",
        base_ns: 500_000,
        knee: 16,
        jitter_permille: 600,
        tail_permille: 30,
        ..SHARP
    }
}

/// The throughput curve of [`virtio`]: fio's 4 KiB random reads (O_DIRECT, io_uring) on this
/// project's 2-vCPU VM's virtio disk at depths 1, 4, 16, 32, 64 and 128 (`benches/RESULTS.md`;
/// depth 256 measured the same as 128).
pub const VIRTIO_CURVE: &[(u32, u64)] = &[
    (1, 16_500),
    (4, 40_000),
    (16, 75_500),
    (32, 87_000),
    (64, 94_500),
    (128, 100_000),
];

/// A virtualised disk (virtio-blk on a shared host) under 4 KiB random reads: a **soft knee**.
/// Throughput grows sublinearly all the way to depth 128 ([`VIRTIO_CURVE`]: 40 k IOPS at 4,
/// 87 k at 32, 94.5 k at 64, 100 k at 128 and beyond), so each doubling past 32 buys only
/// 5–9 %; the mean latency follows Little's law (60 µs at depth 1, 370 µs at 32, 1.3 ms at
/// 128); ±20 % jitter, 0.5 % tail; ±5 % throughput jitter per 5 ms episode and ±4 % drift per
/// 100 ms (the real disk's 100 ms throughput varies by 2–7 %, measured); and above depth 48,
/// stall storms in which completions are held 2–5 ms (1.5 % of completions on average), so the
/// P99 jumps from ≈ 0.45 ms at depth 32 to 3–5 ms from depth 64 on, as the real disk's does.
pub const fn virtio() -> Profile {
    Profile {
        name: "virtio",
        base_ns: 60_000,
        knee: 128,
        jitter_permille: 200,
        tail_permille: 5,
        curve: VIRTIO_CURVE,
        rate_jitter_permille: 50,
        rate_drift_permille: 40,
        stall_above: 48,
        stall_permille: 15,
        stall_min_ns: 2_000_000,
        stall_max_ns: 5_000_000,
        ..SHARP
    }
}

/// Something that happens to the device during a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A neighbour takes `steal_permille` of the device's capacity during `[start_ns, end_ns)`.
    NoisyNeighbour {
        /// When the neighbour arrives.
        start_ns: u64,
        /// When it leaves (exclusive).
        end_ns: u64,
        /// The share of the capacity it takes, in ‰ (capped at 1000).
        steal_permille: u32,
    },
    /// From `at_ns` on, the device behaves as `profile`.
    PhaseChange {
        /// When the phase starts.
        at_ns: u64,
        /// The device's behaviour from then on.
        profile: Profile,
    },
}

/// A seeded xorshift64* generator: deterministic, fast, good enough for latency jitter.
#[derive(Clone, Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // xorshift's state must not be zero; spread the seed so nearby seeds differ at once.
        let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        XorShift(if s == 0 { 0x2545_F491_4F6C_DD1D } else { s })
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `span × frac / 2³²` for a 32-bit `frac`: a uniform draw in `[0, span)` (the product fits 96
/// bits, so the wrapping multiply never wraps).
#[inline]
fn scale32(span: u64, frac: u64) -> u64 {
    ((u128::from(span).wrapping_mul(u128::from(frac))) >> 32) as u64
}

/// The latency distribution of one step, precomputed from its mean.
#[derive(Copy, Clone, Debug)]
struct Dist {
    /// A draw whose top 32 bits scaled to 1000 fall below this is a tail sample.
    tail_permille: u64,
    /// ... below `tail_permille` + this (and not a tail sample) a stall sample.
    stall_permille: u64,
    body_lo: u64,
    /// Body values: `body_lo + [0, body_span)`.
    body_span: u64,
    tail_lo: u64,
    tail_span: u64,
    /// Stall values: `stall_lo + [0, stall_span)`.
    stall_lo: u64,
    stall_span: u64,
}

impl Dist {
    /// The distribution of mean `mean` for profile `p`, with `stall` ‰ of stall samples.
    fn new(mean: u64, p: &Profile, stall: u64) -> Self {
        let t = u128::from(p.tail_permille.min(333));
        let j = u128::from(p.jitter_permille.min(1_000));
        let s = u128::from(stall.min(333));
        let (smin, smax) = (p.stall_min_ns, p.stall_max_ns.max(p.stall_min_ns));
        // Mean extra latency of a stall sample (a stall sample is `mean` + the extra).
        let extra = u128::from(smin / 2 + smax / 2);
        // c = (L·(1 − 2t − s) − s·extra) / ((1 − t − s) + t·(1 + j)/2), both sides × 2·10⁶
        // (t, s, j in ‰); with s = 0 the stall-free formula of the module docs. The body gives
        // up what the stalls add, so the mean stays L, down to a quarter of the stall-free
        // centre (a stall share no body can pay for; then the mean exceeds L).
        let l = u128::from(mean);
        let free = l * (1_000 - 2 * t - s);
        let num = 2_000 * free.saturating_sub(s * extra).max(free / 4);
        let den = 2_000 * (1_000 - t - s) + t * (1_000 + j);
        let centre = u64::try_from(num / den).unwrap_or(u64::MAX);
        let half = u64::try_from(u128::from(centre) * j / 1_000).unwrap_or(centre);
        let top = centre.saturating_add(half);
        let tail_hi = mean.saturating_mul(4).max(top);
        Dist {
            tail_permille: t as u64,
            stall_permille: s as u64,
            body_lo: centre - half,
            body_span: 2 * half + 1,
            tail_lo: top,
            tail_span: tail_hi - top + 1,
            stall_lo: mean.saturating_add(smin),
            stall_span: smax - smin + 1,
        }
    }

    #[inline]
    fn draw(&self, rng: &mut XorShift) -> u64 {
        let r = rng.next();
        let (hi, lo) = (r >> 32, r & 0xFFFF_FFFF);
        let x = (hi * 1_000) >> 32;
        if x < self.tail_permille {
            self.tail_lo.saturating_add(scale32(self.tail_span, lo))
        } else if x < self.tail_permille + self.stall_permille {
            self.stall_lo.saturating_add(scale32(self.stall_span, lo))
        } else {
            self.body_lo + scale32(self.body_span, lo)
        }
    }
}

/// The throughput of a soft-knee curve at depth `n`: linear from (0, 0) to the first point,
/// between points, flat after the last (0 for an empty curve).
fn curve_iops(curve: &[(u32, u64)], n: u32) -> u64 {
    let mut prev = (0u32, 0u64);
    for &(d, x) in curve {
        if n <= d {
            let span = u64::from(d - prev.0).max(1);
            let into = u64::from(n - prev.0);
            return if x >= prev.1 {
                prev.1 + (x - prev.1) * into / span
            } else {
                prev.1 - (prev.1 - x) * into / span
            };
        }
        prev = (d, x);
    }
    prev.1
}

/// A simulated storage device (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Device {
    profile: Profile,
    events: Vec<Event>,
    rng: XorShift,
    /// Service done but not yet a whole completion: slot-nanoseconds (< the base latency) for
    /// the sharp model, completion-nanoseconds (< 10⁹) for a curve.
    carry: u64,
    /// The current episode ends here (profiles with throughput jitter or stalls only).
    episode_end: u64,
    /// The current episode's rate, in ‰ of the model's.
    episode_rate: u64,
    /// The current episode is a stall storm.
    storm: bool,
    /// The current drift period ends here, and its rate factor in ‰.
    drift_end: u64,
    drift_rate: u64,
}

impl Device {
    /// A device behaving as `profile`, with `events` applied at their times, drawing latencies
    /// from `seed`.
    pub fn new(profile: Profile, events: Vec<Event>, seed: u64) -> Self {
        Device {
            profile,
            events,
            rng: XorShift::new(seed),
            carry: 0,
            episode_end: 0,
            episode_rate: 1_000,
            storm: false,
            drift_end: 0,
            drift_rate: 1_000,
        }
    }

    /// The profile in force at `now_ns` (after phase changes).
    pub fn profile_at(&self, now_ns: u64) -> &Profile {
        let mut best: Option<(u64, &Profile)> = None;
        for e in &self.events {
            if let Event::PhaseChange { at_ns, profile } = e {
                if *at_ns <= now_ns && best.is_none_or(|(t, _)| *at_ns >= t) {
                    best = Some((*at_ns, profile));
                }
            }
        }
        best.map_or(&self.profile, |(_, p)| p)
    }

    /// The share of the device neighbours take at `now_ns`, in ‰ (0 to 1000).
    pub fn steal_at(&self, now_ns: u64) -> u32 {
        let mut steal = 0u32;
        for e in &self.events {
            if let Event::NoisyNeighbour {
                start_ns,
                end_ns,
                steal_permille,
            } = e
            {
                if (*start_ns..*end_ns).contains(&now_ns) {
                    steal = steal.saturating_add(*steal_permille);
                }
            }
        }
        steal.min(1_000)
    }

    /// The effective knee at `now_ns`: the profile's knee × (1000 − steal) / 1000, rounded to
    /// nearest, at least 1.
    /// For a soft-knee profile: the depth of the curve's last point (a neighbour scales the
    /// curve's throughput, not its shape).
    pub fn knee_at(&self, now_ns: u64) -> u32 {
        let p = self.profile_at(now_ns);
        if !p.curve.is_empty() {
            return p.knee.max(1);
        }
        let knee = u64::from(p.knee.max(1));
        let share = u64::from(1_000 - self.steal_at(now_ns));
        let eff = (knee * share + 500) / 1_000;
        u32::try_from(eff).unwrap_or(u32::MAX).max(1)
    }

    /// The device's capacity at `now_ns` in completions per second: `knee_at × 10⁹ / base`
    /// (a soft knee: the curve's last throughput × the share neighbours leave).
    pub fn max_iops_at(&self, now_ns: u64) -> u64 {
        let p = self.profile_at(now_ns);
        if !p.curve.is_empty() {
            return self.iops_at(u32::MAX, now_ns);
        }
        let base = p.base_ns.max(1);
        u64::from(self.knee_at(now_ns)) * NS_PER_SEC / base
    }

    /// The model's throughput at `now_ns` with `in_flight` requests, in completions per second:
    /// `min(in_flight, knee_at) × 10⁹ / base` (a soft knee: the curve at `in_flight` × the
    /// share neighbours leave, at least 1 with anything in flight).
    pub fn iops_at(&self, in_flight: u32, now_ns: u64) -> u64 {
        let p = self.profile_at(now_ns);
        if !p.curve.is_empty() {
            let share = u64::from(1_000 - self.steal_at(now_ns));
            let x = curve_iops(p.curve, in_flight) * share / 1_000;
            return if in_flight == 0 { 0 } else { x.max(1) };
        }
        let base = p.base_ns.max(1);
        u64::from(in_flight.min(self.knee_at(now_ns))) * NS_PER_SEC / base
    }

    /// The model's mean latency at `now_ns` with `in_flight` requests:
    /// `max(base, in_flight × base / knee_at)` (rounded down); a soft knee: Little's law,
    /// `in_flight × 10⁹ / iops_at`.
    pub fn mean_latency_ns(&self, in_flight: u32, now_ns: u64) -> u64 {
        if !self.profile_at(now_ns).curve.is_empty() {
            let x = self.iops_at(in_flight.max(1), now_ns);
            return u64::from(in_flight.max(1)) * NS_PER_SEC / x;
        }
        let base = self.profile_at(now_ns).base_ns.max(1);
        let knee = self.knee_at(now_ns);
        if in_flight <= knee {
            base
        } else {
            let l = u128::from(in_flight) * u128::from(base) / u128::from(knee);
            u64::try_from(l).unwrap_or(u64::MAX)
        }
    }

    /// Advances the device by `dt_ns` from `now_ns` with `in_flight` requests in it (held
    /// constant over the step): calls `out(latency_ns, bytes)` once per completion and returns
    /// the number of completions, at most `in_flight` (see the [module docs](self)).
    pub fn step(
        &mut self,
        now_ns: u64,
        dt_ns: u64,
        in_flight: u32,
        out: &mut impl FnMut(u64, u64),
    ) -> u32 {
        if in_flight == 0 {
            self.carry = 0;
            return 0;
        }
        let p = *self.profile_at(now_ns);
        // Throughput jitter and stall storms are drawn per episode; profiles without them draw
        // nothing, so their latencies are those of a device without episodes.
        if (p.rate_jitter_permille > 0 || p.stall_permille > 0) && now_ns >= self.episode_end {
            self.episode_end = now_ns - now_ns % EPISODE_NS + EPISODE_NS;
            let r = self.rng.next();
            let j = u64::from(p.rate_jitter_permille.min(1_000));
            self.episode_rate = 1_000 - j + scale32(2 * j + 1, r >> 32);
            self.storm = (r & 0xFFFF_FFFF) % STORM_EVERY == 0;
        }
        if p.rate_drift_permille > 0 && now_ns >= self.drift_end {
            self.drift_end = now_ns - now_ns % DRIFT_NS + DRIFT_NS;
            let j = u64::from(p.rate_drift_permille.min(1_000));
            self.drift_rate = 1_000 - j + scale32(2 * j + 1, self.rng.next() >> 32);
        }
        let mut rate = if p.rate_jitter_permille > 0 {
            self.episode_rate
        } else {
            1_000
        };
        if p.rate_drift_permille > 0 {
            rate = rate * self.drift_rate / 1_000;
        }
        let whole = if p.curve.is_empty() {
            let knee = self.knee_at(now_ns);
            let base = p.base_ns.max(1);
            let busy = u128::from(in_flight.min(knee));
            let work = u128::from(self.carry) + busy * u128::from(dt_ns) * u128::from(rate) / 1_000;
            self.carry = (work % u128::from(base)) as u64;
            work / u128::from(base)
        } else {
            let x = u128::from(self.iops_at(in_flight, now_ns)) * u128::from(rate) / 1_000;
            let work = u128::from(self.carry) + x * u128::from(dt_ns);
            self.carry = (work % u128::from(NS_PER_SEC)) as u64;
            work / u128::from(NS_PER_SEC)
        };
        let n = if whole > u128::from(in_flight) {
            // More service time than requests: the excess is lost, not banked.
            self.carry = 0;
            in_flight
        } else {
            whole as u32
        };
        if n == 0 {
            return 0;
        }
        let stall = if p.stall_above > 0 && in_flight > p.stall_above && self.storm {
            u64::from(p.stall_permille).saturating_mul(STORM_EVERY)
        } else {
            0
        };
        let dist = Dist::new(self.mean_latency_ns(in_flight, now_ns), &p, stall);
        for _ in 0..n {
            out(dist.draw(&mut self.rng), p.bytes_per_io);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MS: u64 = 1_000_000;
    const SEC_NS: u64 = 1_000 * MS;

    /// Runs `dev` with `n` in flight for `window_ns` in `dt_ns` steps: (completions, latency sum).
    fn drive(dev: &mut Device, from_ns: u64, window_ns: u64, dt_ns: u64, n: u32) -> (u64, u64) {
        let (mut count, mut sum) = (0u64, 0u64);
        let mut t = from_ns;
        while t < from_ns + window_ns {
            let c = dev.step(t, dt_ns, n, &mut |lat, bytes| {
                assert_eq!(bytes, 4_096);
                sum += lat;
            });
            count += u64::from(c);
            t += dt_ns;
        }
        (count, sum)
    }

    #[test]
    fn presets_have_the_documented_capacity() {
        let cases = [
            (nvme(), 64, 800_000),
            (sata_ssd(), 32, 213_333),
            (hdd(), 4, 666),
            (network(), 16, 32_000),
        ];
        for (p, knee, iops) in cases {
            let d = Device::new(p, vec![], 1);
            assert_eq!(d.knee_at(0), knee, "{}", p.name);
            assert_eq!(d.max_iops_at(0), iops, "{}", p.name);
        }
        assert_eq!(
            Device::new(nvme_knee16(), vec![], 1).max_iops_at(0),
            200_000
        );
    }

    #[test]
    fn throughput_is_linear_to_the_knee_then_flat() {
        // 100 ms at each depth, stepped by 40 µs (half a service time): 80 000 ns·slots carry.
        let window = 100 * MS;
        for n in [1u32, 2, 8, 16, 32, 63, 64, 65, 96, 128, 256] {
            let mut d = Device::new(nvme(), vec![], 7);
            let (count, _) = drive(&mut d, 0, window, 40_000, n);
            let want = u64::from(n.min(64)) * window / 80_000;
            assert!(
                count.abs_diff(want) <= 1,
                "n={n}: {count} completions, want {want}"
            );
            assert_eq!(d.iops_at(n, 0), u64::from(n.min(64)) * 12_500);
        }
    }

    #[test]
    fn latency_is_flat_to_the_knee_then_linear_and_littles_law_holds() {
        let d = Device::new(nvme(), vec![], 1);
        for n in [1u32, 16, 64] {
            assert_eq!(d.mean_latency_ns(n, 0), 80_000);
        }
        assert_eq!(d.mean_latency_ns(128, 0), 160_000);
        assert_eq!(d.mean_latency_ns(256, 0), 320_000);

        for (p, n) in [
            (nvme(), 16u32),
            (nvme(), 64),
            (nvme(), 200),
            (network(), 48),
            (hdd(), 12),
        ] {
            let mut d = Device::new(p, vec![], 3);
            // At least 20 000 completions, stepped by one service time.
            let steps = 20_000u64.div_ceil(u64::from(n.min(p.knee)));
            let window = steps * p.base_ns;
            let (count, sum) = drive(&mut d, 0, window, p.base_ns, n);
            assert_eq!(count, steps * u64::from(n.min(p.knee)), "{}", p.name);
            // Little's law: N = X · L = (count / window) × (sum / count) = sum / window.
            let n_measured_x1000 = sum * 1_000 / window;
            let n_x1000 = u64::from(n) * 1_000;
            assert!(
                n_measured_x1000.abs_diff(n_x1000) * 50 <= n_x1000,
                "{} n={n}: X·L = {n_measured_x1000}/1000",
                p.name
            );
            // And the mean latency is the model's.
            let mean = sum / count;
            let want = d.mean_latency_ns(n, 0);
            assert!(
                mean.abs_diff(want) * 50 <= want,
                "{} n={n}: mean {mean} want {want}",
                p.name
            );
        }
    }

    #[test]
    fn latency_distribution_has_the_documented_spread() {
        let mut d = Device::new(nvme(), vec![], 11);
        let mut lats = vec![];
        let mut t = 0;
        while lats.len() < 100_000 {
            d.step(t, 80_000, 32, &mut |lat, _| lats.push(lat));
            t += 80_000;
        }
        lats.sort_unstable();
        let mean = lats.iter().sum::<u64>() / lats.len() as u64;
        let p99 = lats[lats.len() * 99 / 100];
        let min = lats[0];
        assert!(mean.abs_diff(80_000) < 800, "mean {mean}");
        // c = 0.9807 L; 4L − (4L − 1.2c) × 10 / 12 ≈ 1.65 L.
        assert!(
            (1_500 * mean / 1_000..1_800 * mean / 1_000).contains(&p99),
            "p99 {p99} mean {mean}"
        );
        assert!(min >= 62_000, "min {min}"); // 0.785 L
        assert!(lats[lats.len() - 1] <= 4 * 80_000);
    }

    #[test]
    fn completions_never_exceed_in_flight() {
        // A 1 ms step is 12.5 NVMe service times: the cap binds.
        let mut d = Device::new(nvme(), vec![], 5);
        for n in [0u32, 1, 2, 5, 64] {
            let c = d.step(0, MS, n, &mut |_, _| {});
            assert!(c <= n, "n={n}: {c}");
        }
        assert_eq!(d.step(0, MS, 3, &mut |_, _| {}), 3);
        // With dt ≤ base the cap never binds: no completions are lost to it.
        let mut d = Device::new(nvme(), vec![], 5);
        let (count, _) = drive(&mut d, 0, 10 * MS, 80_000, 3);
        assert_eq!(count, 3 * 125);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut d = Device::new(network(), vec![], seed);
            let mut v = vec![];
            let mut t = 0;
            for _ in 0..100 {
                d.step(t, 250_000, 20, &mut |lat, _| v.push(lat));
                t += 250_000;
            }
            v
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn noisy_neighbour_lowers_the_knee_while_present() {
        let ev = Event::NoisyNeighbour {
            start_ns: 1_000 * MS,
            end_ns: 2_000 * MS,
            steal_permille: 500,
        };
        let d = Device::new(nvme(), vec![ev], 1);
        assert_eq!(
            (d.knee_at(999 * MS), d.max_iops_at(999 * MS)),
            (64, 800_000)
        );
        assert_eq!(
            (d.knee_at(1_000 * MS), d.max_iops_at(1_000 * MS)),
            (32, 400_000)
        );
        assert_eq!(
            (d.knee_at(1_999 * MS), d.max_iops_at(1_999 * MS)),
            (32, 400_000)
        );
        assert_eq!(
            (d.knee_at(2_000 * MS), d.max_iops_at(2_000 * MS)),
            (64, 800_000)
        );
        // Same in-flight, half the capacity: twice the latency (Little's law).
        assert_eq!(d.mean_latency_ns(64, 0), 80_000);
        assert_eq!(d.mean_latency_ns(64, 1_500 * MS), 160_000);

        // Rounding to nearest, at least 1; overlapping steals add up (capped).
        let evs = vec![
            Event::NoisyNeighbour {
                start_ns: 0,
                end_ns: 10,
                steal_permille: 700,
            },
            Event::NoisyNeighbour {
                start_ns: 5,
                end_ns: 10,
                steal_permille: 700,
            },
        ];
        let d = Device::new(hdd(), evs, 1);
        assert_eq!(d.knee_at(0), 1); // 4 × 0.3 = 1.2
        assert_eq!(d.knee_at(5), 1); // all stolen: still 1
        assert_eq!(d.steal_at(5), 1_000);
        assert_eq!(d.knee_at(10), 4);
        let d = Device::new(
            sata_ssd(),
            vec![Event::NoisyNeighbour {
                start_ns: 0,
                end_ns: 1,
                steal_permille: 250,
            }],
            1,
        );
        assert_eq!(d.knee_at(0), 24);

        // The model's throughput under the neighbour is the reduced capacity.
        let mut d = Device::new(nvme(), vec![ev], 1);
        let (count, _) = drive(&mut d, 1_000 * MS, 100 * MS, 80_000, 64);
        assert_eq!(count, 100 * MS * 32 / 80_000);
    }

    #[test]
    fn virtio_has_a_soft_knee_and_stalls_only_at_depth() {
        let d = Device::new(virtio(), vec![], 1);
        // The curve, interpolated, flat after 128; Little's law latency.
        assert_eq!(d.iops_at(1, 0), 16_500);
        assert_eq!(d.iops_at(2, 0), 16_500 + 23_500 / 3);
        assert_eq!(d.iops_at(32, 0), 87_000);
        assert_eq!(d.iops_at(96, 0), 97_250);
        assert_eq!(d.iops_at(128, 0), 100_000);
        assert_eq!(d.iops_at(256, 0), 100_000);
        assert_eq!(d.max_iops_at(0), 100_000);
        assert_eq!(d.knee_at(0), 128);
        assert_eq!(d.mean_latency_ns(1, 0), 60_606);
        assert_eq!(d.mean_latency_ns(128, 0), 1_280_000);
        // Each doubling past 32 buys less than 10 %.
        for n in [32u32, 64] {
            let gain = d.iops_at(2 * n, 0) * 1_000 / d.iops_at(n, 0);
            assert!((1_050..1_100).contains(&gain), "{n}: {gain}");
        }
        // Measured: 2 s at each depth in 50 µs steps.
        for (n, p99_lo, p99_hi) in [
            (32u32, 380_000, 520_000),
            (64, 2_500_000, 5_000_000),
            (128, 3_000_000, 6_500_000),
        ] {
            let mut d = Device::new(virtio(), vec![], 5);
            let mut lats = vec![];
            let mut per_tick = vec![0u64; 200];
            let mut t = 0;
            while t < 2_000 * MS {
                let c = d.step(t, 50_000, n, &mut |lat, _| lats.push(lat));
                per_tick[(t / (10 * MS)) as usize] += u64::from(c);
                t += 50_000;
            }
            let count = lats.len() as u64;
            let want = d.iops_at(n, 0) * 2;
            assert!(
                count.abs_diff(want) * 100 <= want,
                "n={n}: {count} vs {want}"
            );
            let mean = lats.iter().sum::<u64>() / count;
            let l = d.mean_latency_ns(n, 0);
            assert!(mean.abs_diff(l) * 20 <= l, "n={n}: mean {mean} vs {l}");
            lats.sort_unstable();
            let p99 = lats[lats.len() * 99 / 100];
            assert!((p99_lo..p99_hi).contains(&p99), "n={n}: p99 {p99}");
            // Per-tick throughput varies by a few percent (the rate jitter).
            let lo = per_tick.iter().min().copied().unwrap_or(0);
            let hi = per_tick.iter().max().copied().unwrap_or(0);
            assert!(hi - lo >= hi / 25, "n={n}: ticks {lo}..{hi}");
        }
        // A neighbour scales the curve.
        let ev = Event::NoisyNeighbour {
            start_ns: 0,
            end_ns: SEC_NS,
            steal_permille: 500,
        };
        let d = Device::new(virtio(), vec![ev], 1);
        assert_eq!(d.iops_at(32, 0), 43_500);
        assert_eq!(d.max_iops_at(0), 50_000);
        assert_eq!(d.mean_latency_ns(32, 0), 735_632);
    }

    #[test]
    fn phase_change_switches_profile_at_its_time() {
        let evs = vec![
            Event::PhaseChange {
                at_ns: 1_000 * MS,
                profile: nvme_knee16(),
            },
            Event::PhaseChange {
                at_ns: 2_000 * MS,
                profile: nvme(),
            },
        ];
        let d = Device::new(nvme(), evs, 1);
        assert_eq!(d.knee_at(0), 64);
        assert_eq!(d.knee_at(999 * MS), 64);
        assert_eq!(
            (d.knee_at(1_000 * MS), d.max_iops_at(1_000 * MS)),
            (16, 200_000)
        );
        assert_eq!(d.profile_at(1_500 * MS).name, "nvme-knee16");
        assert_eq!(
            (d.knee_at(2_000 * MS), d.max_iops_at(2_000 * MS)),
            (64, 800_000)
        );
        assert_eq!(d.mean_latency_ns(64, 1_500 * MS), 320_000);
    }
}
