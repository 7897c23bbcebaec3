//! IPv4 pools and the allocation rules. Allocations are keyed by address (one holder each)
//! and belong to a container id; a container may hold several (one per `WEAVE_CIDR` entry),
//! and asking again for the same entry is idempotent. An address held by a running
//! container cannot be claimed by another; an address whose container stopped can (that is
//! how an IP moves with its container). Removal frees a container's addresses; a dead
//! node's addresses are freed by one command (`reclaim`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Allocation, CommandError, Response, State};

/// An IPv4 network, `a.b.c.d/len`, stored with host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: u32,
    len: u8,
}

impl Cidr {
    /// The netmask as a number.
    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.len))
    }

    /// True when `addr` lies in this network (network and broadcast included).
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == self.network
    }

    /// True when the two networks share an address.
    pub fn overlaps(self, other: Cidr) -> bool {
        let len = self.len.min(other.len);
        let mask = u32::MAX << (32 - u32::from(len));
        self.network & mask == other.network & mask
    }

    /// Host addresses (network and broadcast excluded).
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.len));
        (1..size - 1).map(move |i| Ipv4Addr::from(self.network + i as u32))
    }

    /// Number of host addresses.
    pub fn host_count(self) -> u64 {
        (1u64 << (32 - u32::from(self.len))) - 2
    }

    /// True when `addr` is a usable host address of this network.
    pub fn is_host(self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        self.contains(addr) && a != self.network && a != self.network | !self.mask()
    }
}

impl FromStr for Cidr {
    type Err = CommandError;

    fn from_str(s: &str) -> Result<Self, CommandError> {
        let bad = || CommandError::InvalidCidr { cidr: s.to_owned() };
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if !(1..=30).contains(&len) {
            return Err(bad());
        }
        let mut cidr = Cidr { network: 0, len };
        cidr.network = u32::from(addr) & cidr.mask();
        Ok(cidr)
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
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.len)
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
        assert!(!c.overlaps("10.255.1.0/24".parse().unwrap()));
    }
}
