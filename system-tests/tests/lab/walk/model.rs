//! What the walk expects of the lab: a seeded PRNG that draws the steps, and the model the
//! steps keep (volumes with their records, owner and epoch; the containers the walk
//! started, with their addresses and volumes).

use std::collections::BTreeMap;

/// The lab's nodes, by number (`nodeK`).
pub const NODES: [u32; 3] = [1, 2, 3];

/// The walk's volume names: few, so that creation, removal and re-creation meet.
pub const VOLUMES: [&str; 4] = ["wv0", "wv1", "wv2", "wv3"];

/// The walk's overlay addresses, `10.255.1.X` for X in this range: few, so that claims
/// conflict and addresses move.
pub const ADDRESSES: std::ops::RangeInclusive<u8> = 1..=5;

/// The walk's address `10.255.1.LAST`.
pub fn address(last: u8) -> String {
    format!("10.255.1.{last}")
}

/// splitmix64: small, fast, and the same sequence for the same seed on every machine.
pub struct Rng(u64);

impl Rng {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One of `items` (not empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A node.
    pub fn node(&mut self) -> u32 {
        self.pick(&NODES)
    }

    /// The last byte of one of the walk's addresses.
    pub fn address(&mut self) -> u8 {
        let all: Vec<u8> = ADDRESSES.collect();
        self.pick(&all)
    }

    /// An index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut n = self.below(total as usize) as u32;
        for (i, w) in weights.iter().enumerate() {
            if n < *w {
                return i;
            }
            n -= w;
        }
        unreachable!("n < total")
    }
}

/// A volume as the walk expects it.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    /// Every record written to `/data/log`, in order.
    pub records: Vec<String>,
    /// The owner node, `None` for a volume created without one.
    pub owner: Option<u32>,
    /// The epoch last seen; it never goes back, and goes up with every change of owner.
    pub epoch: u64,
    /// Whether the owner changed (or the volume was made) since the epoch was last seen.
    pub changed: bool,
    /// Lines each stopped writer acknowledged, by the writer's file in the volume: the file
    /// must hold at least that many.
    pub acked: BTreeMap<String, usize>,
}

/// A container the walk started with `docker run -d`.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its name (unique in the walk).
    pub name: String,
    /// Its id.
    pub id: String,
    /// Where it runs.
    pub node: u32,
    /// The last byte of its `WEAVE_CIDR` address, if it has one.
    pub address: Option<u8>,
    /// The volume mounted at `/data`, if any.
    pub volume: Option<String>,
    /// Whether it appends acknowledged lines to `/data/<name>` (only with a volume).
    pub writer: bool,
    /// Whether it runs with `--restart always` (its dockerd starts it again).
    pub restart: bool,
    /// Whether it runs.
    pub running: bool,
}

/// Everything the walk expects.
#[derive(Debug, Default)]
pub struct Model {
    /// Volumes by name.
    pub volumes: BTreeMap<String, Volume>,
    /// The containers started and not removed.
    pub containers: Vec<Container>,
    /// Short-lived (`--rm`) containers that ran: id -> name.
    pub gone: BTreeMap<String, String>,
    /// The next number for a name or a record.
    pub counter: u32,
    /// When each record's write was acknowledged (its `docker run` returned), in wall-clock
    /// milliseconds: what a promotion may lose is told by these times.
    pub written_ms: BTreeMap<String, u64>,
}

impl Model {
    /// A fresh number.
    pub fn next(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    /// The running container that holds `volume`, if one does.
    pub fn holder(&self, volume: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.running && c.volume.as_deref() == Some(volume))
    }

    /// The running container that holds address `last`, if one does.
    pub fn address_holder(&self, last: u8) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.running && c.address == Some(last))
    }

    /// The container named `name`.
    pub fn container_mut(&mut self, name: &str) -> &mut Container {
        self.containers
            .iter_mut()
            .find(|c| c.name == name)
            .expect("a container of the model")
    }

    /// Running containers.
    pub fn running(&self) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(|c| c.running)
    }

    /// Whether `text` names a container that does not run: a short-lived one that exited
    /// or a stopped or removed one of the walk. Returns its name.
    pub fn names_a_dead_container(&self, text: &str) -> Option<String> {
        let dead_model = self
            .containers
            .iter()
            .filter(|c| !c.running)
            .map(|c| (c.id.as_str(), c.name.as_str()));
        let gone = self.gone.iter().map(|(i, n)| (i.as_str(), n.as_str()));
        dead_model
            .chain(gone)
            .find(|(id, name)| names(text, id, name))
            .map(|(_, name)| name.to_owned())
    }
}

/// Whether `text` names the container with `id` and `name` (by its name or its 12-character
/// short id).
pub fn names(text: &str, id: &str, name: &str) -> bool {
    let short = &id[..id.len().min(12)];
    (!short.is_empty() && text.contains(short))
        || text.contains(&format!("\"{name}\""))
        || text.contains(&format!(" {name} "))
        || text.contains(&format!("'{name}'"))
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_draws_the_same_walk() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..8).map(|_| r.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut r = Rng::new(1);
        let picks: Vec<usize> = (0..300).map(|_| r.weighted(&[1, 0, 3])).collect();
        assert!(!picks.contains(&1) && picks.contains(&0) && picks.contains(&2));
    }
}
