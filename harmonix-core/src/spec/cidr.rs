//! IPv4 CIDR blocks: strict parsing, alignment and the private ranges.

use std::fmt;

/// An IPv4 CIDR block as written (`a.b.c.d/n`), not necessarily aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Cidr {
    /// The address part, as a number.
    pub addr: u32,
    /// The prefix length, 0–32.
    pub len: u8,
}

/// The RFC 1918 private ranges a VPC may use.
pub(crate) const PRIVATE_RANGES: [Ipv4Cidr; 3] = [
    Ipv4Cidr {
        addr: 10 << 24,
        len: 8,
    },
    Ipv4Cidr {
        addr: (172 << 24) | (16 << 16),
        len: 12,
    },
    Ipv4Cidr {
        addr: (192 << 24) | (168 << 16),
        len: 16,
    },
];

impl Ipv4Cidr {
    /// Parse `a.b.c.d/n` strictly: four decimal octets 0–255 without
    /// leading zeros or signs, a prefix length 0–32. The message says what
    /// is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, len) = s.split_once('/').ok_or_else(|| {
            "no prefix length: expected `a.b.c.d/n`, e.g. `10.0.0.0/24`".to_owned()
        })?;
        let octets: Vec<&str> = addr.split('.').collect();
        if octets.len() != 4 {
            return Err(format!(
                "`{addr}` is not an IPv4 address: expected four numbers 0–255 separated by dots"
            ));
        }
        let mut value: u32 = 0;
        for o in octets {
            let n = decimal(o, 255).ok_or_else(|| {
                format!("`{o}` is not an IPv4 octet: expected a number 0–255 without leading zeros")
            })?;
            value = (value << 8) | n;
        }
        let len = decimal(len, 32)
            .ok_or_else(|| format!("`/{len}` is not a prefix length: expected a number 0–32"))?;
        Ok(Self {
            addr: value,
            len: u8::try_from(len).unwrap_or(32),
        })
    }

    /// The network mask of this prefix length.
    pub fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        }
    }

    /// Whether no host bits are set.
    pub fn is_aligned(self) -> bool {
        self.addr & !self.mask() == 0
    }

    /// The block with the host bits cleared.
    pub fn aligned(self) -> Self {
        Self {
            addr: self.addr & self.mask(),
            len: self.len,
        }
    }

    /// Whether the whole block lies inside `outer`.
    pub fn within(self, outer: Self) -> bool {
        self.len >= outer.len && (self.addr & outer.mask()) == (outer.addr & outer.mask())
    }

    /// Whether the whole block lies in one of [`PRIVATE_RANGES`].
    pub fn is_private(self) -> bool {
        PRIVATE_RANGES.iter().any(|r| self.within(*r))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [o1, o2, o3, o4] = self.addr.to_be_bytes();
        write!(f, "{o1}.{o2}.{o3}.{o4}/{}", self.len)
    }
}

/// A plain decimal number `0..=max`: ASCII digits only, no leading zero
/// unless it is `0` itself.
fn decimal(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse::<u32>().ok().filter(|n| *n <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        match Ipv4Cidr::parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(c("10.0.0.0/24").to_string(), "10.0.0.0/24");
        assert_eq!(c("192.168.255.0/28").to_string(), "192.168.255.0/28");
        assert_eq!(c("0.0.0.0/0"), Ipv4Cidr { addr: 0, len: 0 });
        assert_eq!(c("255.255.255.255/32").addr, u32::MAX);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0.0/24",
            "10.0.0.256/24",
            "10.0.0.0/33",
            "10.0.0.0/",
            "/24",
            "10.0.0.-1/24",
            "10.0.0.+1/24",
            "010.0.0.0/24",
            "10.0.0.0/024",
            "10.0.0.0/2 4",
            " 10.0.0.0/24",
            "a.b.c.d/8",
            "10..0.0/16",
            "10.0.0.0/1000",
            "١٠.0.0.0/8",
        ] {
            assert!(Ipv4Cidr::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn alignment() {
        assert!(c("10.0.0.0/24").is_aligned());
        assert!(!c("10.0.0.1/24").is_aligned());
        assert_eq!(c("10.0.1.77/22").aligned().to_string(), "10.0.0.0/22");
        assert_eq!(c("172.16.5.0/16").aligned().to_string(), "172.16.0.0/16");
        assert!(c("1.2.3.4/0").aligned() == Ipv4Cidr { addr: 0, len: 0 });
        assert!(c("1.2.3.4/32").is_aligned());
    }

    #[test]
    fn private_ranges() {
        assert!(c("10.255.0.0/16").is_private());
        assert!(c("172.16.0.0/12").is_private());
        assert!(c("172.31.255.0/24").is_private());
        assert!(!c("172.32.0.0/16").is_private());
        assert!(!c("172.15.0.0/16").is_private());
        assert!(c("192.168.0.0/16").is_private());
        assert!(!c("192.169.0.0/16").is_private());
        assert!(!c("8.0.0.0/8").is_private());
        // Larger than the range it starts in.
        assert!(!c("10.0.0.0/7").is_private());
        assert!(!c("172.16.0.0/11").is_private());
        assert!(!c("100.64.0.0/16").is_private());
    }
}
