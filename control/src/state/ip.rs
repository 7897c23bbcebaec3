//! IPv4 pools and the allocation rules. Allocations are keyed by address (one holder each)
//! and belong to a container id; a container may hold several (one per `WEAVE_CIDR` entry),
//! and asking again for the same entry is idempotent. An address held by a running
//! container cannot be claimed by another; an address whose container stopped can (that is
//! how an IP moves with its container). Removal frees a container's addresses; a dead
//! node's addresses are freed by one command (`reclaim`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{Allocation, CommandError, Response, State};

/// The prefix lengths a pool may have: a /30 is the smallest with a usable address.
const POOL_PREFIXES: std::ops::RangeInclusive<u8> = 1..=30;

/// A pool: an IPv4 network `a.b.c.d/len` with `len` from 1 to 30, stored with host
/// bits cleared. Serialized as its text (`"10.0.0.0/24"`), as in every Raft log and
/// snapshot written so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(Ipv4Net);

impl Cidr {
    /// True when `addr` lies in this network (network and broadcast included).
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        self.0.contains(&addr)
    }

    /// True when the two networks share an address (one contains the other).
    pub fn overlaps(self, other: Cidr) -> bool {
        self.0.contains(&other.0) || other.0.contains(&self.0)
    }

    /// Host addresses (network and broadcast excluded).
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        self.0.hosts()
    }

    /// Number of host addresses.
    pub fn host_count(self) -> u64 {
        // 2^(32 - len) addresses less the network and the broadcast: the host mask less one.
        u64::from(self.0.hostmask().to_bits()) - 1
    }

    /// True when `addr` is a usable host address of this network.
    pub fn is_host(self, addr: Ipv4Addr) -> bool {
        self.contains(addr) && addr != self.0.network() && addr != self.0.broadcast()
    }
}

impl FromStr for Cidr {
    type Err = CommandError;

    fn from_str(s: &str) -> Result<Self, CommandError> {
        let net: Ipv4Net = s
            .parse()
            .map_err(|_| CommandError::InvalidCidr { cidr: s.to_owned() })?;
        if !POOL_PREFIXES.contains(&net.prefix_len()) {
            return Err(CommandError::InvalidCidr { cidr: s.to_owned() });
        }
        Ok(Cidr(net.trunc()))
    }
}

impl TryFrom<String> for Cidr {
    type Error = CommandError;
    fn try_from(s: String) -> Result<Self, CommandError> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub(super) fn add_pool(state: &mut State, cidr: &str) -> Result<Response, CommandError> {
    let pool: Cidr = cidr.parse()?;
    if state.pools.contains(&pool) {
        return Ok(Response::Pool(pool));
    }
    if let Some(existing) = state.pools.iter().find(|p| p.overlaps(pool)) {
        return Err(CommandError::PoolOverlap {
            cidr: pool.to_string(),
            existing: existing.to_string(),
        });
    }
    state.pools.push(pool);
    state.pools.sort();
    Ok(Response::Pool(pool))
}

/// What a container asks for, checked before it exists (`dry_run`).
#[derive(Clone, Copy, Debug)]
pub enum AddressRequest<'a> {
    /// This address (`ClaimIp`).
    Explicit(&'a str),
    /// Any free address of this pool (`AllocateIp`).
    Pool(&'a str),
}

/// Stands for the container in a check made before it is created: it holds nothing yet.
const NEW_CONTAINER: &str = "(a new container)";

impl State {
    /// The address a new container on `node` would get for `request`, or why it would be
    /// refused, by the rule `ClaimIp`/`AllocateIp` apply; changes nothing.
    pub fn check_address(
        &self,
        request: AddressRequest<'_>,
        node: &str,
    ) -> Result<Ipv4Addr, CommandError> {
        let h = Holder {
            container_id: NEW_CONTAINER,
            container_name: NEW_CONTAINER,
            node,
        };
        let grant = match request {
            AddressRequest::Explicit(address) => grant_claim(self, address, &h)?,
            AddressRequest::Pool(pool) => grant_allocation(self, pool, &h)?,
        };
        Ok(grant.address())
    }
}

/// Who holds what, for one container's request.
pub(super) struct Holder<'a> {
    pub container_id: &'a str,
    pub container_name: &'a str,
    pub node: &'a str,
}

fn check_holder(state: &State, h: &Holder<'_>) -> Result<(), CommandError> {
    if h.container_id.is_empty() {
        return Err(CommandError::EmptyContainerId);
    }
    if !state.nodes.contains_key(h.node) {
        return Err(CommandError::UnknownNode {
            name: h.node.to_owned(),
        });
    }
    Ok(())
}

/// The container's allocation in `pool`, if it has one.
fn held_in(state: &State, container_id: &str, pool: Cidr) -> Option<Ipv4Addr> {
    state
        .allocations
        .values()
        .find(|a| a.container_id == container_id && a.pool == pool)
        .map(|a| a.address)
}

/// Refresh an existing allocation for a (re)started container.
fn refresh(state: &mut State, address: Ipv4Addr, h: &Holder<'_>) -> Response {
    let a = state
        .allocations
        .get_mut(&address)
        .expect("caller checked the allocation exists");
    a.node = h.node.to_owned();
    a.container_name = h.container_name.to_owned();
    a.running = true;
    Response::Allocation(a.clone())
}

/// `net:POOL`: the container's address in the pool if it has one (idempotent), else the
/// lowest free one. Pools are never created here: an operator adds them (`flockerctl ip
/// add-pool`), so a typo in `WEAVE_CIDR` cannot carve out a new network.
pub(super) fn allocate(
    state: &mut State,
    pool: &str,
    h: Holder<'_>,
) -> Result<Response, CommandError> {
    let grant = grant_allocation(state, pool, &h)?;
    Ok(carry_out(state, grant, &h))
}

/// What a claim or an allocation does, decided by reading the state only: a request is
/// checked (`ClaimIp`/`AllocateIp` with `dry_run`) and applied by the same rule.
pub(super) enum Grant {
    /// The container holds this address already: refresh it.
    Refresh(Ipv4Addr),
    /// Give the container this address of this pool (free, or taken over from a stopped
    /// holder).
    Insert(Ipv4Addr, Cidr),
}

impl Grant {
    /// The address granted.
    pub(super) fn address(&self) -> Ipv4Addr {
        match self {
            Grant::Refresh(a) | Grant::Insert(a, _) => *a,
        }
    }
}

pub(super) fn grant_allocation(
    state: &State,
    pool: &str,
    h: &Holder<'_>,
) -> Result<Grant, CommandError> {
    check_holder(state, h)?;
    let pool: Cidr = pool.parse()?;
    if !state.pools.contains(&pool) {
        return Err(CommandError::NoSuchPool {
            cidr: pool.to_string(),
        });
    }
    if let Some(address) = held_in(state, h.container_id, pool) {
        return Ok(Grant::Refresh(address));
    }
    let address = pool
        .hosts()
        .find(|a| !state.allocations.contains_key(a))
        .ok_or_else(|| CommandError::PoolExhausted {
            cidr: pool.to_string(),
        })?;
    Ok(Grant::Insert(address, pool))
}

fn carry_out(state: &mut State, grant: Grant, h: &Holder<'_>) -> Response {
    match grant {
        Grant::Refresh(address) => refresh(state, address, h),
        Grant::Insert(address, pool) => insert(state, address, pool, h),
    }
}

fn insert(state: &mut State, address: Ipv4Addr, pool: Cidr, h: &Holder<'_>) -> Response {
    let a = Allocation {
        address,
        pool,
        container_id: h.container_id.to_owned(),
        container_name: h.container_name.to_owned(),
        node: h.node.to_owned(),
        running: true,
    };
    state.allocations.insert(address, a.clone());
    Response::Allocation(a)
}

/// An explicit address: kept if the container holds it, taken over if its holder stopped
/// (how an address moves with its container), refused if a running container holds it.
/// The container's other addresses stay (a container may have several).
pub(super) fn claim(
    state: &mut State,
    address: &str,
    h: Holder<'_>,
) -> Result<Response, CommandError> {
    let grant = grant_claim(state, address, &h)?;
    Ok(carry_out(state, grant, &h))
}

pub(super) fn grant_claim(
    state: &State,
    address: &str,
    h: &Holder<'_>,
) -> Result<Grant, CommandError> {
    check_holder(state, h)?;
    let addr: Ipv4Addr = address.parse().map_err(|_| CommandError::InvalidAddress {
        address: address.to_owned(),
    })?;
    let pool = state
        .pools
        .iter()
        .copied()
        .find(|p| p.is_host(addr))
        .ok_or_else(|| CommandError::AddressOutsidePools {
            address: addr.to_string(),
        })?;
    match state.allocations.get(&addr) {
        Some(a) if a.container_id == h.container_id => return Ok(Grant::Refresh(addr)),
        Some(a) if a.running => {
            let node_down = state.nodes.get(&a.node).is_some_and(|n| !n.up);
            return Err(CommandError::AddressHeld {
                address: addr.to_string(),
                container_id: a.container_id.clone(),
                container_name: a.container_name.clone(),
                node: a.node.clone(),
                hint: if node_down {
                    format!(
                        "node {:?} is down: if it is gone for good, free its addresses with \
                         `flockerctl ip reclaim {}`",
                        a.node, a.node
                    )
                } else {
                    "stop or remove that container first".to_owned()
                },
            });
        }
        _ => {}
    }
    Ok(Grant::Insert(addr, pool))
}

/// Every allocation of the container, marked stopped: others may now claim them. A
/// container without addresses is not an error (the agent reports every container).
pub(super) fn stopped(state: &mut State, container_id: &str) -> Result<Response, CommandError> {
    if container_id.is_empty() {
        return Err(CommandError::EmptyContainerId);
    }
    let changed = state
        .allocations
        .values_mut()
        .filter(|a| a.container_id == container_id)
        .map(|a| {
            a.running = false;
            a.clone()
        })
        .collect();
    Ok(Response::Allocations(changed))
}

/// Frees every address of the container (it was removed). Idempotent.
pub(super) fn release(state: &mut State, container_id: &str) -> Result<Response, CommandError> {
    if container_id.is_empty() {
        return Err(CommandError::EmptyContainerId);
    }
    Ok(Response::AllocationsReleased(remove_where(state, |a| {
        a.container_id == container_id
    })))
}

/// Frees every address held on a node that is down (its containers are gone with it).
/// Refused while the node is up: its containers may still be using the addresses.
pub(super) fn reclaim(state: &mut State, node: &str) -> Result<Response, CommandError> {
    let n = state
        .nodes
        .get(node)
        .ok_or_else(|| CommandError::UnknownNode {
            name: node.to_owned(),
        })?;
    if n.up {
        return Err(CommandError::NodeUp {
            name: node.to_owned(),
        });
    }
    Ok(Response::AllocationsReleased(remove_where(state, |a| {
        a.node == node
    })))
}

fn remove_where(state: &mut State, pred: impl Fn(&Allocation) -> bool) -> Vec<Allocation> {
    let gone: Vec<Ipv4Addr> = state
        .allocations
        .values()
        .filter(|a| pred(a))
        .map(|a| a.address)
        .collect();
    gone.iter()
        .filter_map(|addr| state.allocations.remove(addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.255.0.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.255.0.0/24");
        assert!(c.contains("10.255.0.200".parse().unwrap()));
        assert!(!c.contains("10.255.1.1".parse().unwrap()));
        assert!(c.is_host("10.255.0.1".parse().unwrap()));
        assert!(!c.is_host("10.255.0.0".parse().unwrap()));
        assert!(!c.is_host("10.255.0.255".parse().unwrap()));
        assert_eq!(c.host_count(), 254);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/0",
            "10.0.0.0/31",
            "x/8",
            "10.0.0.300/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let big: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(big.overlaps(c) && c.overlaps(big));
        assert!(c.overlaps(c));
        assert!(!c.overlaps("10.255.1.0/24".parse().unwrap()));
        let smallest: Cidr = "10.0.0.4/30".parse().unwrap();
        assert_eq!(smallest.host_count(), 2);
        assert_eq!(smallest.hosts().count(), 2);
        let largest: Cidr = "128.0.0.0/1".parse().unwrap();
        assert_eq!(largest.host_count(), (1 << 31) - 2);
        assert!(largest.is_host("255.255.255.254".parse().unwrap()));
        assert!(!largest.is_host("255.255.255.255".parse().unwrap()));
    }

    /// Raft logs and snapshots written before pools were `ipnet` networks hold them as
    /// plain strings; they must still decode, and encode the same way.
    #[test]
    fn cidr_json_is_the_plain_string() {
        let c: Cidr = serde_json::from_str(r#""10.0.0.0/24""#).unwrap();
        assert_eq!(c, "10.0.0.0/24".parse().unwrap());
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""10.0.0.0/24""#);
        let old = r#"{"address":"10.0.0.7","pool":"10.0.0.0/24","container_id":"c1",
            "container_name":"web","node":"n1","running":true}"#;
        let a: Allocation = serde_json::from_str(old).unwrap();
        assert_eq!(a.pool.to_string(), "10.0.0.0/24");
        assert!(a.pool.is_host(a.address));
        let pools: Vec<Cidr> = serde_json::from_str(r#"["10.0.0.0/24","10.9.0.0/16"]"#).unwrap();
        assert_eq!(pools.len(), 2);
        // The pool rule holds on decode too.
        assert!(serde_json::from_str::<Cidr>(r#""10.0.0.0/31""#).is_err());
    }
}
