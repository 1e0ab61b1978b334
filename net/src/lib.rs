//! # vidbuilder-net
//!
//! The SSRF guard: which addresses the server may connect to on a client's behalf (webhook
//! deliveries, image fetches), and the `reqwest` client builder that enforces it.
//!
//! Refused (unless inside a CIDR of `webhook.allow_cidrs`): loopback, unspecified, private
//! (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata address
//! 169.254.169.254, fe80::/10), CGNAT 100.64/10, multicast, broadcast, "this network" 0/8,
//! reserved 240/4, IETF protocol assignments 192.0.0/24, benchmarking 198.18/15, documentation
//! (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32), site-local fec0::/10, discard-only
//! 100::/64, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, Teredo 2001::/32, and 6to4 2002::/16 around a
//! refused IPv4 address. IPv4-mapped and IPv4-compatible IPv6 forms (`::ffff:a.b.c.d`,
//! `::a.b.c.d`) are canonicalised to IPv4 first.
//!
//! Odd spellings of IPv4 hosts (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are normalised by
//! the WHATWG URL parser (the `url` crate) the way browsers and curl read them, so they arrive
//! here as the IP literal they mean.
//!
//! Two checks use the guard:
//! - [`SsrfGuard::check_url`] at submission: IP literals and `localhost` names are decided there
//!   and then (→ 400).
//! - [`GuardedResolver`] at delivery: a `reqwest` DNS resolver that resolves with tokio and hands
//!   reqwest only the addresses the guard accepts, so the connection goes to a checked address
//!   (no second lookup). reqwest skips the resolver for IP-literal URLs, so the transport checks
//!   those with [`SsrfGuard::check_url`] before sending.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a target was refused. Its `Display` is the operator's detail (which address, which
/// range) for the server log; [`SsrfRefused::public`] is what a client may be told, which names
/// only the host the client gave and never an address it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrfRefused {
    host: String,
    detail: String,
}

impl SsrfRefused {
    fn new(host: impl Into<String>, detail: impl Into<String>) -> SsrfRefused {
        SsrfRefused {
            host: host.into(),
            detail: detail.into(),
        }
    }

    /// The generic refusal for clients: the host as they wrote it, no resolved address, no range.
    pub fn public(&self) -> String {
        if self.host.is_empty() {
            "the URL has no host".into()
        } else {
            format!(
                "'{}' is not a destination this server connects to",
                self.host
            )
        }
    }
}

impl fmt::Display for SsrfRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for SsrfRefused {}

/// `"addr/len"` as an address and a prefix length (at most 32 for IPv4, 128 for IPv6).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// A CIDR block: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Reads `"addr/len"` (see [`parse_cidr`]); `None` when it is not a valid CIDR.
    pub fn parse(s: &str) -> Option<Cidr> {
        parse_cidr(s).map(|(addr, len)| Cidr { addr, len })
    }

    /// Whether `ip` is inside the block; an address of the other family never is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net, self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net, self.len),
            _ => false,
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// `::ffff:a.b.c.d` (mapped) and `::a.b.c.d` (compatible, deprecated) → `a.b.c.d`; other
/// addresses unchanged. `::` and `::1` stay IPv6.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && u128::from(v6) > 1 {
                return IpAddr::V4(Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32));
            }
            ip
        }
        v4 => v4,
    }
}

/// Why this address must not be connected to on a client's behalf, or `None` if it is a public
/// unicast address. `ip` should be [`canonical`] already.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([169, 254, 169, 254], 32, "the cloud metadata address"),
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a carrier-grade NAT address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay anycast address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    RANGES
        .iter()
        .find(|(net, len, _)| in_v4(ip, Ipv4Addr::from(*net), *len))
        .map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    const RANGES: &[(&str, u8, &str)] = &[
        ("64:ff9b::", 96, "a NAT64 address"),
        ("64:ff9b:1::", 48, "a NAT64 address"),
        ("100::", 64, "a discard-only address"),
        ("2001::", 32, "a Teredo address"),
        ("2001:db8::", 32, "a documentation address"),
        ("fc00::", 7, "a private (unique local) address"),
        ("fe80::", 10, "a link-local address"),
        ("fec0::", 10, "a site-local address"),
        ("ff00::", 8, "a multicast address"),
    ];
    if let Some((_, _, why)) = RANGES
        .iter()
        .find(|(net, len, _)| in_v6(ip, net.parse().expect("valid constant"), *len))
    {
        return Some(why);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries the IPv4 address AA.BB.CC.DD.
    let s = ip.segments();
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        if forbidden_v4(v4).is_some() {
            return Some("a 6to4 address around a refused IPv4 address");
        }
    }
    None
}

/// The guard: the refused ranges minus an allowlist of CIDRs.
#[derive(Debug, Clone, Default)]
pub struct SsrfGuard {
    allow: Vec<Cidr>,
}

impl SsrfGuard {
    /// With the allowlisted CIDRs (as in `webhook.allow_cidrs`); bad entries are errors.
    pub fn new<S: AsRef<str>>(allow_cidrs: &[S]) -> Result<SsrfGuard, String> {
        let allow = allow_cidrs
            .iter()
            .map(|c| {
                Cidr::parse(c.as_ref())
                    .ok_or_else(|| format!("'{}' is not a CIDR like 127.0.0.0/8", c.as_ref()))
            })
            .collect::<Result<_, _>>()?;
        Ok(SsrfGuard { allow })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        let c = canonical(ip);
        self.allow.iter().any(|n| n.contains(ip) || n.contains(c))
    }

    /// Ok if the server may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfRefused> {
        let c = canonical(ip);
        match forbidden_reason(c) {
            Some(why) if !self.allowed(ip) => {
                let shown = if c == ip {
                    ip.to_string()
                } else {
                    format!("{ip} (= {c})")
                };
                Err(SsrfRefused::new(
                    ip.to_string(),
                    format!("{shown} is {why}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// What can be known from the URL alone: an IP-literal host is checked; `localhost` and
    /// `*.localhost` (which always mean loopback) are checked as 127.0.0.1 and ::1; any other name
    /// is left to the resolver at delivery.
    pub fn check_url(&self, url: &Url) -> Result<(), SsrfRefused> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map_err(|mut r| {
                r.host = format!("[{ip}]");
                r
            }),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    let v4 = self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                    let v6 = self.check_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
                    return match (v4, v6) {
                        (Err(_), Err(_)) => Err(SsrfRefused::new(
                            name.clone(),
                            format!("'{name}' is a loopback name (127.0.0.1, ::1)"),
                        )),
                        _ => Ok(()),
                    };
                }
                Ok(())
            }
            None => Err(SsrfRefused::new("", "the URL has no host")),
        }
    }

    /// Keeps the addresses the guard accepts; an error naming the refusals if none is left.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, SsrfRefused> {
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        for a in addrs {
            match self.check_ip(a.ip()) {
                Ok(()) => ok.push(a),
                Err(e) => refused.push(e.detail),
            }
        }
        if ok.is_empty() {
            if refused.is_empty() {
                return Err(SsrfRefused::new(
                    host,
                    format!("'{host}' resolved to no address"),
                ));
            }
            refused.dedup();
            return Err(SsrfRefused::new(
                host,
                format!(
                    "'{host}' resolves only to refused addresses: {}",
                    refused.join("; ")
                ),
            ));
        }
        Ok(ok)
    }
}

/// A reqwest DNS resolver that resolves with tokio (the system resolver) and returns only the
/// addresses the guard accepts, so reqwest connects to a checked address.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<SsrfGuard>,
}

impl GuardedResolver {
    /// A resolver that lets through only the addresses `guard` accepts.
    pub fn new(guard: Arc<SsrfGuard>) -> GuardedResolver {
        GuardedResolver { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let ok = guard.filter(&host, found)?;
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// A reqwest client builder that connects only where `guard` allows: no proxy, names resolved
/// by a [`GuardedResolver`] (so the connection goes to a checked address), no redirects. Callers
/// add timeouts and a user agent, may replace the redirect policy with one that checks each hop
/// with [`SsrfGuard::check_url`], and must check IP-literal URLs with [`SsrfGuard::check_url`]
/// themselves (reqwest skips the resolver for those).
pub fn guarded_client(guard: Arc<SsrfGuard>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(guard)))
}

/// The [`SsrfRefused`] somewhere in an error's source chain, if any.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<SsrfRefused> {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = e {
        if let Some(r) = err.downcast_ref::<SsrfRefused>() {
            return Some(r.clone());
        }
        e = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> SsrfGuard {
        SsrfGuard::default()
    }

    fn host_of(u: &str) -> String {
        Url::parse(u).unwrap().host_str().unwrap().to_string()
    }

    #[test]
    fn the_url_parser_normalises_odd_ipv4_spellings() {
        for (u, want) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://127.000.000.001/", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://169.254.43518/", "169.254.169.254"),
            ("http://0xa9fea9fe/", "169.254.169.254"),
            ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"),
            ("http://[::ffff:7f00:1]/", "[::ffff:7f00:1]"),
            (
                "http://[0:0:0:0:0:ffff:169.254.169.254]/",
                "[::ffff:a9fe:a9fe]",
            ),
            ("http://[::1]/", "[::1]"),
            ("http://LOCALHOST/", "localhost"),
        ] {
            assert_eq!(host_of(u), want, "{u}");
        }
        // Spellings that are neither a valid IPv4 address nor a domain are parse errors.
        for bad in [
            "http://1.2.3.4.5/",
            "http://256.0.0.1/",
            "http://0x100000000/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_odd_spelling_of_an_internal_address_is_refused() {
        let g = guard();
        for u in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://0x7f000001/",
            "http://0/",
            "http://0.0.0.0:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.43518/",
            "http://0xa9fea9fe/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[0:0:0:0:0:ffff:169.254.169.254]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::1]/",
            "http://[::]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::808:808]/",
            "http://[2002:7f00:1::]/",
            "http://[fd00::1]/",
            "http://[fe80::1%25eth0]/",
            "http://localhost/",
            "http://LocalHost./",
            "http://api.localhost/",
        ] {
            let url = match Url::parse(u) {
                Ok(url) => url,
                Err(_) => continue, // unparseable: refused as an invalid URL anyway
            };
            assert!(g.check_url(&url).is_err(), "{u} must be refused");
        }
        for u in [
            "http://93.184.215.14/",
            "https://[2606:4700::1111]/",
            "https://example.com/hook",
            "http://[2002:5db8:d70e::]/",
        ] {
            assert!(
                g.check_url(&Url::parse(u).unwrap()).is_ok(),
                "{u} must pass"
            );
        }
    }

    /// Property test: an IPv4 address written in any spelling the URL parser accepts (dotted,
    /// one number, hex/octal parts, 2- and 3-part forms, trailing dot, IPv4-mapped and NAT64
    /// IPv6) inside random URL dressing is refused exactly when the address itself is, and
    /// random garbage never panics the parser or the guard.
    #[test]
    fn any_spelling_of_any_address_is_judged_like_the_address() {
        fn part(r: &mut fastrand::Rng, v: u32) -> String {
            match r.u64(..3) {
                0 => v.to_string(),
                1 => format!("0x{v:x}"),
                _ => format!("0{v:o}"),
            }
        }
        let g = guard();
        let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
        let interesting = [
            [127, 0, 0, 1],
            [10, 1, 2, 3],
            [169, 254, 169, 254],
            [100, 64, 0, 1],
            [192, 168, 1, 1],
            [0, 0, 0, 0],
            [224, 0, 0, 1],
            [8, 8, 8, 8],
            [93, 184, 215, 14],
        ];
        let (mut refused, mut passed) = (0, 0);
        for _ in 0..100_000 {
            let ip = if rng.u64(..3) == 0 {
                Ipv4Addr::from(interesting[rng.u64(..interesting.len() as u64) as usize])
            } else {
                Ipv4Addr::from(rng.u64(..) as u32)
            };
            let o = ip.octets();
            let n = u32::from(ip);
            let host = match rng.u64(..8) {
                0 => ip.to_string(),
                1 => part(&mut rng, n),
                2 => format!(
                    "{}.{}.{}.{}",
                    part(&mut rng, o[0].into()),
                    part(&mut rng, o[1].into()),
                    part(&mut rng, o[2].into()),
                    part(&mut rng, o[3].into())
                ),
                3 => format!(
                    "{}.{}",
                    part(&mut rng, o[0].into()),
                    part(&mut rng, n & 0xFF_FFFF)
                ),
                4 => format!(
                    "{}.{}.{}",
                    part(&mut rng, o[0].into()),
                    part(&mut rng, o[1].into()),
                    part(&mut rng, n & 0xFFFF)
                ),
                5 => format!("{ip}."),
                6 => format!("[::ffff:{ip}]"),
                _ => format!("[64:ff9b::{:x}:{:x}]", n >> 16, n & 0xFFFF),
            };
            let userinfo = ["", "user@", "a:b@"][rng.u64(..3) as usize];
            let port = ["", ":80", ":8080", ":65535"][rng.u64(..4) as usize];
            let path = ["/", "/hook?x=1", "/a/../b", "#frag"][rng.u64(..4) as usize];
            let scheme = ["http", "https", "HTTP"][rng.u64(..3) as usize];
            let raw = format!("{scheme}://{userinfo}{host}{port}{path}");
            let url = Url::parse(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let expect_refused = forbidden_reason(IpAddr::V4(ip)).is_some();
            let got = g.check_url(&url);
            if host.starts_with("[64:ff9b::") {
                // NAT64 addresses are refused whatever they embed (the whole prefix is).
                assert!(got.is_err(), "{raw} must be refused");
            } else {
                assert_eq!(got.is_err(), expect_refused, "{raw} ({ip}): {got:?}");
            }
            if got.is_err() {
                refused += 1;
            } else {
                passed += 1;
            }
        }
        assert!(
            refused > 10_000 && passed > 10_000,
            "{refused} refused, {passed} passed"
        );

        // Garbage: whatever parses is judged without panicking.
        const BITS: [&str; 16] = [
            "http://",
            "https://",
            "[",
            "]",
            ":",
            "@",
            "%25",
            ".",
            "0x",
            "::",
            "ffff",
            "127",
            "/",
            "%00",
            "\\",
            "\u{1F600}",
        ];
        for _ in 0..50_000 {
            let raw: String = (0..rng.u64(..10))
                .map(|_| BITS[rng.u64(..BITS.len() as u64) as usize])
                .collect();
            if let Ok(url) = Url::parse(&raw) {
                let _ = g.check_url(&url);
            }
        }
    }

    #[test]
    fn every_range_is_classified() {
        let refused = [
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::1.2.3.4",
            "2001:0:4136:e378::1",
            "::ffff:192.168.0.1",
            "::ffff:100.64.0.1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(guard().check_ip(ip).is_err(), "{ip} must be refused");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ];
        for ip in public {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(guard().check_ip(ip).is_ok(), "{ip} must pass");
        }
        let why = guard()
            .check_ip("::ffff:169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert!(
            why.to_string().contains("metadata") && why.to_string().contains("= 169.254.169.254"),
            "{why}"
        );
        // What a client is told names the host it gave, not the range.
        assert_eq!(
            why.public(),
            "'::ffff:169.254.169.254' is not a destination this server connects to"
        );
    }

    #[test]
    fn the_allowlist_opens_exactly_its_cidrs() {
        let g = SsrfGuard::new(&["127.0.0.0/8", "fd00::/8", "10.1.0.0/16"]).unwrap();
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "::ffff:127.0.0.1",
            "fd12::1",
            "10.1.2.3",
        ] {
            assert!(g.check_ip(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for no in [
            "::1",
            "10.2.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "fc00::1",
        ] {
            assert!(g.check_ip(no.parse().unwrap()).is_err(), "{no}");
        }
        assert!(g
            .check_url(&Url::parse("http://localhost:1/").unwrap())
            .is_ok());
        assert!(g.check_url(&Url::parse("http://0x7f.1/").unwrap()).is_ok());
        assert!(SsrfGuard::new(&["nonsense"]).is_err());
        assert!(SsrfGuard::new(&["10.0.0.0/33"]).is_err());
        let all = SsrfGuard::new(&["0.0.0.0/0"]).unwrap();
        assert!(all.check_ip("10.0.0.1".parse().unwrap()).is_ok());
        assert!(all.check_ip("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn filtering_keeps_checked_addresses_and_names_the_refusals() {
        let g = guard();
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b: SocketAddr = "[::1]:0".parse().unwrap();
        let c: SocketAddr = "93.184.215.14:0".parse().unwrap();
        assert_eq!(g.filter("x", [a, c, b]).unwrap(), vec![c]);
        let e = g.filter("localhost", [a, b]).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        // The client's version: the name only, never what it resolved to.
        assert_eq!(
            e.public(),
            "'localhost' is not a destination this server connects to"
        );
        assert!(g.filter("x", []).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let r = GuardedResolver::new(Arc::new(guard()));
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refusal = refusal_in(err.as_ref()).expect("an SSRF refusal");
        assert!(refusal.to_string().contains("loopback"), "{refusal}");
        let open = GuardedResolver::new(Arc::new(SsrfGuard::new(&["127.0.0.0/8"]).unwrap()));
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.ip().is_ipv4()));
        assert!(!addrs.is_empty());
    }
}
