//! `WEAVE_CIDR`: what addresses a container asks for, parsed before anything happens.
//!
//! The value is one or more entries separated by commas (or spaces, as Weave allowed):
//! - `10.255.0.51/8` or `ip:10.255.0.51/8`: exactly this address, with the prefix length
//!   of the subnet it reaches on `ethwe`;
//! - `net:10.2.0.0/24`: any free address in that subnet (the control service picks one).
//!
//! Bad values are refused with a message naming the entry and what is wrong, before the
//! container is created.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The environment variable the weave adapter reads.
pub const WEAVE_CIDR: &str = "WEAVE_CIDR";
/// The smallest subnet `net:` accepts: a /30 has two usable addresses.
pub const MAX_NET_PREFIX: u8 = 30;

/// One address a container asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CidrRequest {
    /// This address with this prefix length.
    Explicit(Ipv4Net),
    /// Any free address in this subnet (host bits zero, prefix at most
    /// [`MAX_NET_PREFIX`]).
    Net(Ipv4Net),
}

impl fmt::Display for CidrRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrRequest::Explicit(cidr) => write!(f, "{cidr}"),
            CidrRequest::Net(subnet) => write!(f, "net:{subnet}"),
        }
    }
}

/// A `WEAVE_CIDR` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad WEAVE_CIDR {entry:?}: {reason}")]
pub struct CidrError {
    /// The entry (or the whole value) at fault.
    pub entry: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

/// Parses a whole `WEAVE_CIDR` value into its requests, in order.
pub fn parse(value: &str) -> Result<Vec<CidrRequest>, CidrError> {
    let entries: Vec<&str> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        return Err(error(
            value,
            "no address given: use e.g. 10.255.0.51/8 or net:10.2.0.0/24",
        ));
    }
    let mut requests = Vec::with_capacity(entries.len());
    for entry in entries {
        let request = parse_entry(entry)?;
        if requests.contains(&request) {
            return Err(error(entry, "given twice"));
        }
        requests.push(request);
    }
    Ok(requests)
}

/// The requests in a container's environment (`NAME=value` entries, the last one of a
/// name wins, as in a shell); `None` when `WEAVE_CIDR` is not set.
pub fn from_env<S: AsRef<str>>(env: &[S]) -> Option<Result<Vec<CidrRequest>, CidrError>> {
    let value = env.iter().rev().find_map(|entry| {
        let (name, value) = entry.as_ref().split_once('=')?;
        (name == WEAVE_CIDR).then_some(value)
    })?;
    Some(parse(value))
}

fn parse_entry(entry: &str) -> Result<CidrRequest, CidrError> {
    if let Some(net) = entry.strip_prefix("net:") {
        if net == "default" {
            return Err(error(
                entry,
                "there is no default subnet: name one, e.g. net:10.2.0.0/24",
            ));
        }
        let subnet = split(entry, net)?;
        let prefix = subnet.prefix_len();
        if prefix > MAX_NET_PREFIX {
            return Err(error(
                entry,
                format!("a subnet to pick from must be /{MAX_NET_PREFIX} or larger"),
            ));
        }
        if subnet.addr() != subnet.network() {
            return Err(error(
                entry,
                format!(
                    "host bits are set: the subnet is net:{}, or give {subnet} for that \
                     exact address",
                    subnet.trunc()
                ),
            ));
        }
        return Ok(CidrRequest::Net(subnet));
    }
    let text = entry.strip_prefix("ip:").unwrap_or(entry);
    let cidr = split(entry, text)?;
    let (addr, prefix) = (cidr.addr(), cidr.prefix_len());
    // A /31 or /32 has no network or broadcast address: every address is usable.
    if prefix < 31 && (addr == cidr.network() || addr == cidr.broadcast()) {
        return Err(error(
            entry,
            format!("{addr} is the network or broadcast address of /{prefix}"),
        ));
    }
    Ok(CidrRequest::Explicit(cidr))
}

/// `ADDRESS/PREFIX` with an IPv4 address and a prefix length from 1 to 32.
fn split(entry: &str, text: &str) -> Result<Ipv4Net, CidrError> {
    const FORMS: &str = "expected ADDRESS/PREFIX (10.255.0.51/8) or net:SUBNET/PREFIX \
                         (net:10.2.0.0/24)";
    let (addr, prefix) = text.split_once('/').ok_or_else(|| error(entry, FORMS))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| error(entry, format!("{addr:?} is not an IPv4 address; {FORMS}")))?;
    match prefix.parse() {
        Ok(len) if len >= 1 => Ipv4Net::new(addr, len).ok(),
        _ => None,
    }
    .ok_or_else(|| {
        error(
            entry,
            format!("{prefix:?} is not a prefix length from 1 to 32"),
        )
    })
}

fn error(entry: &str, reason: impl Into<String>) -> CidrError {
    CidrError {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn explicit(s: &str) -> CidrRequest {
        CidrRequest::Explicit(s.parse().unwrap())
    }

    #[test]
    fn explicit_net_and_several() {
        assert_eq!(parse("10.255.0.51/8").unwrap(), [explicit("10.255.0.51/8")]);
        assert_eq!(
            parse("ip:10.255.0.51/8").unwrap(),
            [explicit("10.255.0.51/8")]
        );
        let net = parse("net:10.2.0.0/24").unwrap();
        let CidrRequest::Net(subnet) = net[0] else {
            panic!("{net:?}")
        };
        assert_eq!(subnet.to_string(), "10.2.0.0/24");
        assert!(subnet.contains(&Ipv4Addr::new(10, 2, 0, 77)));
        assert!(!subnet.contains(&Ipv4Addr::new(10, 2, 1, 1)));
        let several = parse("10.255.0.51/8, net:10.2.0.0/24 10.3.0.1/32").unwrap();
        assert_eq!(several.len(), 3);
        assert_eq!(several[2], explicit("10.3.0.1/32"));
        assert_eq!(several[1].to_string(), "net:10.2.0.0/24");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for (bad, says) in [
            ("", "no address given"),
            (" , ", "no address given"),
            ("10.255.0.51", "expected ADDRESS/PREFIX"),
            ("10.255.0.300/8", "not an IPv4 address"),
            ("fe80::1/64", "not an IPv4 address"),
            ("10.255.0.51/33", "prefix length from 1 to 32"),
            ("10.255.0.51/0", "prefix length from 1 to 32"),
            ("10.255.0.51/x", "prefix length"),
            ("10.0.0.0/8", "network or broadcast"),
            ("10.255.255.255/8", "network or broadcast"),
            (
                "net:10.2.0.5/24",
                "host bits are set: the subnet is net:10.2.0.0/24",
            ),
            ("net:10.2.0.0/31", "/30 or larger"),
            ("net:default", "no default subnet"),
            ("net:", "expected ADDRESS/PREFIX"),
            ("10.1.1.1/8,10.1.1.1/8", "given twice"),
            ("dhcp", "expected ADDRESS/PREFIX"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(e.to_string().contains("WEAVE_CIDR"), "{e}");
        }
    }

    #[test]
    fn point_to_point_prefixes_allow_every_address() {
        assert!(parse("10.0.0.0/31").is_ok());
        assert!(parse("10.0.0.1/31").is_ok());
        assert!(parse("10.0.0.0/32").is_ok());
    }

    #[test]
    fn env_lookup() {
        let env = ["PATH=/bin", "WEAVE_CIDR=10.1.1.1/8", "WEAVE_CIDRS=x"];
        assert_eq!(from_env(&env).unwrap().unwrap(), [explicit("10.1.1.1/8")]);
        assert!(from_env(&["PATH=/bin"]).is_none());
        assert!(from_env(&["WEAVE_CIDR="]).unwrap().is_err());
        let twice = ["WEAVE_CIDR=10.1.1.1/8", "WEAVE_CIDR=10.1.1.2/8"];
        assert_eq!(from_env(&twice).unwrap().unwrap(), [explicit("10.1.1.2/8")]);
    }

    proptest! {
        #[test]
        fn explicit_round_trips(addr in any::<u32>(), prefix in 1u8..=32) {
            let cidr = Ipv4Net::new(Ipv4Addr::from(addr), prefix).unwrap();
            let (network, broadcast) = (cidr.network(), cidr.broadcast());
            prop_assume!(prefix >= 31 || (cidr.addr() != network && cidr.addr() != broadcast));
            let text = format!("{}/{prefix}", Ipv4Addr::from(addr));
            let parsed = parse(&text).unwrap();
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].to_string(), text);
        }

        #[test]
        fn net_round_trips(addr in any::<u32>(), prefix in 1u8..=MAX_NET_PREFIX) {
            let network = Ipv4Net::new(Ipv4Addr::from(addr), prefix).unwrap().network();
            let text = format!("net:{network}/{prefix}");
            let parsed = parse(&text).unwrap();
            prop_assert_eq!(parsed[0].to_string(), text);
            let CidrRequest::Net(subnet) = parsed[0] else { unreachable!() };
            prop_assert!(subnet.contains(&Ipv4Addr::from(addr)));
        }

        #[test]
        fn never_panics_and_errors_name_the_variable(text in ".{0,40}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.to_string().starts_with("bad WEAVE_CIDR"));
            }
        }

        #[test]
        fn lists_keep_order(addrs in proptest::collection::btree_set(1u32..250, 1..6)) {
            let entries: Vec<String> = addrs.iter().map(|a| format!("10.9.0.{a}/24")).collect();
            let parsed = parse(&entries.join(",")).unwrap();
            let printed: Vec<String> = parsed.iter().map(ToString::to_string).collect();
            prop_assert_eq!(printed, entries);
        }
    }
}
