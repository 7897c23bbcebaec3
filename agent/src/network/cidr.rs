//! An IPv4 interface address with its prefix length, as given in `WEAVE_CIDR`
//! (`10.255.0.51/16`): the address the container gets and the subnet it reaches on `ethwe`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NetError;

/// An IPv4 address and prefix length, e.g. `10.255.0.51/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// An address with a prefix length of at most 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 32 {
            return Err(NetError::BadCidr {
                input: format!("{addr}/{prefix}"),
                reason: "the prefix length must be at most 32",
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = |reason| NetError::BadCidr {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.255.0.51/16"))?;
        let addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        Self::new(addr, prefix).map_err(|_| bad("the prefix length must be at most 32"))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let c: Ipv4Cidr = "10.255.0.51/16".parse().unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(10, 255, 0, 51));
        assert_eq!(c.prefix(), 16);
        assert_eq!(c.to_string(), "10.255.0.51/16");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "10.255.0.51",
            "10.255.0.51/33",
            "x/8",
            "10.0.0.1/",
            "::1/64",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
