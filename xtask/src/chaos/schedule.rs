//! The chaos schedule: which faults, in which order, held how long, with which pauses between
//! them, drawn from a seed. Pure: the same seed, duration, fault kinds and limit give the same
//! schedule on every machine (its own small generator, no platform randomness), so a run that
//! found something can be repeated step for step.
//!
//! Faults come in rounds: each round holds every chosen kind once (stream-leader kills
//! [`FaultKind::weight`] times), shuffled. So every kind turns up in every stretch of a run, and a
//! long run kills the stream leader about a quarter of the time. A step is one fault, healed
//! before the next starts, unless the schedule combines a server fault with a worker or relay
//! fault on purpose (at most `max_at_once` faults at once).

use std::time::Duration;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the server leading the drill stream, then restart it.
    KillStreamLeader,
    /// SIGKILL the JetStream meta leader, then restart it.
    KillMetaLeader,
    /// SIGKILL a server picked at random, then restart it.
    KillServer,
    /// Freeze a server (SIGSTOP, `docker pause`), then resume it.
    PauseServer,
    /// Cut a server off its peers (processes: routes removed and reloaded; containers: network
    /// disconnect), then heal it.
    Partition,
    /// SIGKILL two of the three servers, then restart both.
    QuorumLoss,
    /// Restart a server through lame-duck mode (SIGUSR2, wait for it to exit, start it).
    LameDuck,
    /// SIGKILL one of the three inbox workers, then start a replacement.
    KillWorker,
    /// Freeze one of the inbox workers (SIGSTOP), then resume it.
    PauseWorker,
    /// SIGKILL the outbox relay, then start a replacement.
    KillRelay,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillStreamLeader,
        FaultKind::KillMetaLeader,
        FaultKind::KillServer,
        FaultKind::PauseServer,
        FaultKind::Partition,
        FaultKind::QuorumLoss,
        FaultKind::LameDuck,
        FaultKind::KillWorker,
        FaultKind::PauseWorker,
        FaultKind::KillRelay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::KillStreamLeader => "kill-stream-leader",
            FaultKind::KillMetaLeader => "kill-meta-leader",
            FaultKind::KillServer => "kill-server",
            FaultKind::PauseServer => "pause-server",
            FaultKind::Partition => "partition",
            FaultKind::QuorumLoss => "quorum-loss",
            FaultKind::LameDuck => "lame-duck",
            FaultKind::KillWorker => "kill-worker",
            FaultKind::PauseWorker => "pause-worker",
            FaultKind::KillRelay => "kill-relay",
        }
    }

    /// A fault of the servers (the others hit the workers or the relay).
    pub fn hits_servers(self) -> bool {
        !matches!(
            self,
            FaultKind::KillWorker | FaultKind::PauseWorker | FaultKind::KillRelay
        )
    }

    /// How often the kind is in a round: stream-leader kills are what the acceptance counts.
    pub fn weight(self) -> usize {
        match self {
            FaultKind::KillStreamLeader => 3,
            _ => 1,
        }
    }

    /// The range a fault's hold is drawn from, in ms: how long the server stays down, frozen or
    /// cut off (for kills: at least; the runner first waits for the new leader), how long a
    /// worker stays dead or frozen.
    fn hold_ms(self) -> (u64, u64) {
        match self {
            FaultKind::KillStreamLeader | FaultKind::KillMetaLeader | FaultKind::KillServer => {
                (1_000, 4_000)
            }
            FaultKind::PauseServer => (2_000, 8_000),
            FaultKind::Partition => (4_000, 10_000),
            FaultKind::QuorumLoss => (3_000, 6_000),
            FaultKind::LameDuck => (0, 2_000),
            FaultKind::KillWorker | FaultKind::KillRelay => (500, 3_000),
            FaultKind::PauseWorker => (1_000, 5_000),
        }
    }

    /// The least a step of this kind can take (hold, restart, gate): sizes the schedule so it
    /// never runs out before the duration does.
    fn least_ms(self) -> u64 {
        self.hold_ms().0
            + match self {
                FaultKind::LameDuck => 10_000,
                k if k.hits_servers() => 1_000,
                _ => 500,
            }
    }
}

/// One fault as planned: its kind, how long it is held, and a number that picks its target
/// where the kind does not name one (which server, which two, which worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(rename = "hold_ms", serialize_with = "millis")]
    pub hold: Duration,
    pub pick: u32,
}

/// One step: a pause, then a fault, and sometimes a second fault on purpose (a worker or relay
/// fault started right after a server fault and healed with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// 1-based.
    pub index: usize,
    /// Time to let the cluster settle before the step starts.
    #[serde(rename = "gap_ms", serialize_with = "millis")]
    pub gap: Duration,
    pub fault: Fault,
    pub with: Option<Fault>,
}

impl Step {
    /// How many faults are in place at once during the step.
    pub fn at_once(&self) -> usize {
        1 + usize::from(self.with.is_some())
    }

    /// `kill-stream-leader`, or `kill-stream-leader + kill-worker`.
    pub fn label(&self) -> String {
        match &self.with {
            None => self.fault.kind.as_str().to_owned(),
            Some(w) => format!("{} + {}", self.fault.kind.as_str(), w.kind.as_str()),
        }
    }

    /// Whether a fault of `kind` is part of the step.
    #[cfg(test)]
    pub fn has(&self, kind: FaultKind) -> bool {
        self.fault.kind == kind || self.with.is_some_and(|w| w.kind == kind)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub seed: u64,
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    pub max_at_once: usize,
    pub steps: Vec<Step>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between_ms(&mut self, (lo, hi): (u64, u64)) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// Gaps between steps, in ms.
const GAP_MS: (u64, u64) = (1_000, 4_000);
/// One server fault in this many gets a worker or relay fault with it (when allowed).
const COMBINE_ONE_IN: u64 = 4;

/// The schedule for `seed`: steps drawn from `kinds` (every kind when empty) until even the
/// quickest steps would fill `duration`; the runner stops at the duration, so a schedule is
/// never too short. A second fault is combined with a step only when `max_at_once >= 2`.
pub fn plan(seed: u64, duration: Duration, kinds: &[FaultKind], max_at_once: usize) -> Schedule {
    let mut kinds: Vec<FaultKind> = if kinds.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    kinds.sort();
    kinds.dedup();
    let companions: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|k| !k.hits_servers())
        .collect();
    let mut rng = Rng(seed);
    let mut steps = Vec::new();
    let mut least = 0u64;
    let budget = duration.as_millis() as u64;
    while least < budget && steps.len() < 10_000 {
        let mut round: Vec<FaultKind> = kinds
            .iter()
            .flat_map(|k| std::iter::repeat_n(*k, k.weight()))
            .collect();
        // Fisher-Yates.
        for i in (1..round.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            round.swap(i, j);
        }
        for kind in round {
            if least >= budget {
                break;
            }
            let gap = rng.between_ms(GAP_MS);
            let fault = Fault {
                kind,
                hold: rng.between_ms(kind.hold_ms()),
                pick: rng.next() as u32,
            };
            let combine = max_at_once >= 2
                && kind.hits_servers()
                && !companions.is_empty()
                && rng.below(COMBINE_ONE_IN) == 0;
            let with = combine.then(|| {
                let k = companions[rng.below(companions.len() as u64) as usize];
                Fault {
                    kind: k,
                    hold: rng.between_ms(k.hold_ms()),
                    pick: rng.next() as u32,
                }
            });
            least += gap.as_millis() as u64 + kind.least_ms();
            steps.push(Step {
                index: steps.len() + 1,
                gap,
                fault,
                with,
            });
        }
    }
    Schedule {
        seed,
        duration,
        max_at_once,
        steps,
    }
}

/// A seed for a run that was given none (printed, so the run can be repeated).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng(nanos ^ u64::from(std::process::id())).next() % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = plan(42, TEN_MIN, &[], 2);
        assert_eq!(a, plan(42, TEN_MIN, &[], 2));
        assert_ne!(a.steps, plan(43, TEN_MIN, &[], 2).steps);
        // The order of --faults does not matter.
        let k = [FaultKind::KillWorker, FaultKind::KillStreamLeader];
        let r = [FaultKind::KillStreamLeader, FaultKind::KillWorker];
        assert_eq!(plan(7, TEN_MIN, &k, 1), plan(7, TEN_MIN, &r, 1));
    }

    #[test]
    fn only_the_chosen_kinds_are_drawn() {
        let chosen = [FaultKind::PauseServer, FaultKind::KillRelay];
        let s = plan(1, TEN_MIN, &chosen, 2);
        assert!(s.steps.iter().all(|st| chosen.contains(&st.fault.kind)
            && st.with.is_none_or(|w| chosen.contains(&w.kind))));
        for kind in chosen {
            assert!(
                s.steps.iter().any(|st| st.has(kind)),
                "{kind:?} never drawn"
            );
        }
    }

    #[test]
    fn never_more_faults_at_once_than_allowed() {
        for seed in 0..20 {
            let one = plan(seed, TEN_MIN, &[], 1);
            assert!(one.steps.iter().all(|s| s.at_once() == 1));
            let two = plan(seed, TEN_MIN, &[], 2);
            assert!(two.steps.iter().all(|s| s.at_once() <= 2));
            // Combined on purpose: a server fault with a worker or relay fault, never two of
            // the same side.
            for s in two.steps.iter().filter(|s| s.with.is_some()) {
                assert!(s.fault.kind.hits_servers(), "{s:?}");
                assert!(!s.with.unwrap().kind.hits_servers(), "{s:?}");
            }
        }
        assert!(
            (0..20).any(|seed| plan(seed, TEN_MIN, &[], 2)
                .steps
                .iter()
                .any(|s| s.with.is_some())),
            "combinations do happen"
        );
    }

    #[test]
    fn every_stretch_of_a_run_has_every_kind_and_a_quarter_are_leader_kills() {
        let s = plan(2026, TEN_MIN, &[], 2);
        let round = FaultKind::ALL.iter().map(|k| k.weight()).sum::<usize>();
        for chunk in s.steps.chunks(round).filter(|c| c.len() == round) {
            for kind in FaultKind::ALL {
                let n = chunk.iter().filter(|st| st.fault.kind == kind).count();
                assert_eq!(n, kind.weight(), "{kind:?} in {chunk:?}");
            }
        }
        let first_30: Vec<&Step> = s.steps.iter().take(30).collect();
        let kills = first_30
            .iter()
            .filter(|st| st.fault.kind == FaultKind::KillStreamLeader)
            .count();
        assert!(
            kills >= 6,
            "{kills} stream-leader kills in the first 30 steps"
        );
    }

    #[test]
    fn holds_and_gaps_stay_in_their_ranges_and_the_plan_outlasts_the_duration() {
        let s = plan(9, Duration::from_secs(120), &[], 2);
        for st in &s.steps {
            let (lo, hi) = st.fault.kind.hold_ms();
            let hold = st.fault.hold.as_millis() as u64;
            assert!((lo..=hi).contains(&hold), "{st:?}");
            let gap = st.gap.as_millis() as u64;
            assert!((GAP_MS.0..=GAP_MS.1).contains(&gap), "{st:?}");
        }
        let least: u64 = s
            .steps
            .iter()
            .map(|st| st.gap.as_millis() as u64 + st.fault.kind.least_ms())
            .sum();
        assert!(least >= 120_000, "{least} ms of steps for a 120 s run");
        assert_eq!(
            s.steps.iter().map(|st| st.index).collect::<Vec<_>>(),
            (1..=s.steps.len()).collect::<Vec<_>>()
        );
    }
}
