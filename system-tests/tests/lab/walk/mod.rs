//! A seeded, model-based randomized walk over the lab. Each step is drawn from a seeded
//! PRNG ([`model::Rng`]): a write through a `docker run --rm` that checks every earlier
//! record, a `volume move` (with and without `--stop`, sometimes to the owner, sometimes
//! while a writer holds the volume), long-lived and short-lived containers with
//! `WEAVE_CIDR` addresses, their removal, SIGKILL and restart of an agent, a control member
//! (the leader included) or a dockerd, a volume's owner dying (cut off the network, agent and
//! dockerd killed) and its replica promoted, volume create and rm. After every step the
//! invariants of [`check`] hold. A failure names the seed, the step and what broke;
//! `LAB_WALK_SEED=S LAB_WALK_STEPS=N` replays it (`LAB_WALK_KINDS` keeps the same kinds).
//!
//! Bugs that are known and being fixed elsewhere fail the walk with a message naming them;
//! `LAB_WALK_KNOWN_BUGS=report` prints them instead and walks on (to look for others).

mod check;
mod containers;
mod death;
mod faults;
mod finish;
mod host;
pub mod model;
pub mod retention;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use model::{Model, Rng};

/// The seed every run walks first (then a random one), so CI always covers one known walk.
pub const FIXED_SEED: u64 = 0x5EED_F10C_CE12_0001;

/// Steps per walk unless `LAB_WALK_STEPS` says otherwise.
pub const DEFAULT_STEPS: u32 = 20;

/// Bugs the walk knows by their signature: the (being fixed on other branches) and
/// those the walk found. With `LAB_WALK_KNOWN_BUGS=report` they are reported, not fatal.
const KNOWN: [(&str, &str); 3] = [
    (
        "1",
        "moves and the retention rule: a move to a host holding an older replica fails, and moves leave snapshots or datasets the rule does not allow",
    ),
    (
        "2",
        "a short-lived (--rm) container's address stays `running`, or its volume lease stays, after it exited",
    ),
    (
        "rm",
        "`flockerctl volume rm` deletes the record but leaves the volume's datasets on its owner and replicas",
    ),
];

/// The kinds of step and their weights.
const STEPS: [(&str, u32); 11] = [
    ("write", 6),
    ("move", 4),
    ("run", 3),
    ("run --rm", 3),
    ("stop/rm/start", 3),
    ("kill agent", 1),
    ("kill member", 1),
    ("restart dockerd", 1),
    ("host dies", 1),
    ("volume create", 1),
    ("volume rm", 1),
];

/// One walk over the lab.
pub struct Walk {
    seed: u64,
    steps: u32,
    step: u32,
    rng: Rng,
    model: Model,
    /// Whether known bugs are reported and walked past instead of failing the walk.
    report_known: bool,
    /// Known-bug sightings already printed (each is printed once).
    sightings: BTreeSet<String>,
    /// How long each kind of step took.
    timings: BTreeMap<&'static str, Vec<Duration>>,
    /// What the current step does, for failure messages.
    doing: String,
    /// Whether the next check also looks inside the containers (after a restart).
    deep: bool,
}

/// Prints how to replay the walk when the test panics inside it.
struct Replay {
    seed: u64,
    steps: u32,
}

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kinds = std::env::var("LAB_WALK_KINDS")
                .map(|k| format!("LAB_WALK_KINDS='{k}' "))
                .unwrap_or_default();
            eprintln!(
                "walk failed; replay with: {kinds}LAB_WALK_SEED={} LAB_WALK_STEPS={} CI=true cargo test -p system-tests --test lab walk -- --nocapture",
                self.seed, self.steps
            );
        }
    }
}

/// The seeds to walk: `LAB_WALK_SEED` alone, else the fixed seed and a random one.
pub fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("LAB_WALK_SEED") {
        let seed = s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("LAB_WALK_SEED={s:?} is not a number"));
        return vec![seed];
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let random = Rng::new(nanos ^ u64::from(std::process::id())).next_u64();
    vec![FIXED_SEED, random]
}

/// Steps per walk: `LAB_WALK_STEPS` or [`DEFAULT_STEPS`].
pub fn steps() -> u32 {
    std::env::var("LAB_WALK_STEPS").map_or(DEFAULT_STEPS, |s| {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("LAB_WALK_STEPS={s:?} is not a number"))
    })
}

/// The steps' weights; with `LAB_WALK_KINDS=K1,K2,...` only those kinds are drawn (to
/// look at one kind of step, e.g. `LAB_WALK_KINDS='write,host dies'`).
fn weights() -> [u32; STEPS.len()] {
    let only = std::env::var("LAB_WALK_KINDS").ok();
    let kinds: Option<Vec<&str>> = only
        .as_deref()
        .map(|o| o.split(',').map(str::trim).collect());
    if let Some(kinds) = &kinds {
        for k in kinds {
            assert!(
                STEPS.iter().any(|(s, _)| s == k),
                "LAB_WALK_KINDS: no step {k:?} (steps: {:?})",
                STEPS.map(|(s, _)| s)
            );
        }
    }
    STEPS.map(|(kind, w)| match &kinds {
        Some(kinds) if !kinds.contains(&kind) => 0,
        _ => w,
    })
}

impl Walk {
    /// Walks `steps` steps from `seed` over a lab that holds none of the walk's volumes and
    /// containers, then checks every volume's data and removes what it made.
    pub fn run(seed: u64, steps: u32) {
        let _replay = Replay { seed, steps };
        eprintln!("walk: LAB_WALK_SEED={seed} LAB_WALK_STEPS={steps}");
        let mut walk = Walk {
            seed,
            steps,
            step: 0,
            rng: Rng::new(seed),
            model: Model::default(),
            report_known: std::env::var("LAB_WALK_KNOWN_BUGS").is_ok_and(|v| v == "report"),
            sightings: BTreeSet::new(),
            timings: BTreeMap::new(),
            doing: "start".into(),
            deep: false,
        };
        walk.check();
        let weights = weights();
        for step in 1..=steps {
            walk.step = step;
            let kind = STEPS[walk.rng.weighted(&weights)].0;
            let started = Instant::now();
            walk.take(kind, true);
            let took = started.elapsed();
            walk.check();
            eprintln!("walk: step {step}/{steps} {} ({took:.1?})", walk.doing);
            walk.timings.entry(kind).or_default().push(took);
        }
        walk.step = steps + 1;
        walk.finish();
        walk.print_timings();
        if !walk.sightings.is_empty() {
            eprintln!(
                "walk: LAB_WALK_SEED={seed}: {} known-bug sightings (LAB_WALK_KNOWN_BUGS=report)",
                walk.sightings.len()
            );
        }
    }

    /// Takes one step of `kind`; `faults` says whether it may kill something (a step taken
    /// while a member is down may not).
    fn take(&mut self, kind: &str, faults: bool) {
        match kind {
            "write" => self.write(),
            "move" => self.move_volume(),
            "run" => self.run_long(),
            "run --rm" => self.run_short(),
            "stop/rm/start" => self.stop_rm_or_start(),
            "kill agent" if faults => self.kill_agent(),
            "kill member" if faults => self.kill_member(),
            "restart dockerd" if faults => self.restart_dockerd(),
            "host dies" if faults => self.host_dies(),
            "volume create" => self.create_volume(),
            "volume rm" => self.remove_volume(),
            _ => self.write(),
        }
    }

    /// Records what the step does (shown in the log and in failures).
    fn say(&mut self, doing: String) {
        self.doing = doing;
    }

    /// Fails the walk: the seed, the step and what broke.
    fn fail(&self, what: &str) -> ! {
        panic!(
            "walk LAB_WALK_SEED={} LAB_WALK_STEPS={}: step {} ({}): {what}",
            self.seed, self.steps, self.step, self.doing
        )
    }

    /// A known bug showed: fails the walk naming it, or with `LAB_WALK_KNOWN_BUGS=report`
    /// prints it (once) and goes on.
    fn known(&mut self, bug: &str, what: &str) {
        let title = KNOWN
            .iter()
            .find(|(n, _)| *n == bug)
            .map_or("", |(_, t)| *t);
        if !self.report_known {
            self.fail(&format!("known bug {bug} ({title}): {what}"));
        }
        if self.sightings.insert(format!("{bug}: {what}")) {
            eprintln!(
                "walk: KNOWN BUG {bug} at LAB_WALK_SEED={} step {} ({}): {what}",
                self.seed, self.step, self.doing
            );
        }
    }

    /// Classifies an error a user saw that the model did not expect: a known bug's
    /// signature is reported as such, anything else fails the walk.
    fn unexpected_error(&mut self, what: &str, error: &str) {
        if error.contains("destination has snapshots") || error.contains("must destroy them") {
            return self.known("1", &format!("{what}: {error}"));
        }
        if let Some(name) = self.model.names_a_dead_container(error) {
            return self.known(
                "2",
                &format!("{what}: refused for container {name}, which does not run: {error}"),
            );
        }
        self.fail(&format!("{what} failed unexpectedly: {error}"))
    }

    fn print_timings(&self) {
        eprintln!("walk: LAB_WALK_SEED={} step times:", self.seed);
        for (kind, times) in &self.timings {
            let total: Duration = times.iter().sum();
            let max = times.iter().max().copied().unwrap_or_default();
            eprintln!(
                "walk:   {kind:<16} {:>3} steps, mean {:>6.1?}, max {:>6.1?}",
                times.len(),
                total / times.len() as u32,
                max
            );
        }
    }
}
