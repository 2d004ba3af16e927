//! Tests of the address guard: every refused range, embedded IPv4 forms, and the
//! resolver and URL checks.

use super::*;

fn class(s: &str) -> AddressClass {
    classify(s.parse().expect("test address"))
}

#[test]
fn ipv4_ranges_are_classified() {
    for ip in [
        "0.0.0.0",
        "0.1.2.3",
        "169.254.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        assert_eq!(class(ip), AddressClass::AlwaysBlocked, "{ip}");
    }
    for ip in ["127.0.0.1", "127.255.255.254"] {
        assert_eq!(class(ip), AddressClass::Loopback, "{ip}");
    }
    for ip in [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
    ] {
        assert_eq!(class(ip), AddressClass::Private, "{ip}");
    }
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "192.169.0.1",
        "198.20.0.1",
    ] {
        assert_eq!(class(ip), AddressClass::Public, "{ip}");
    }
}

#[test]
fn ipv6_ranges_are_classified() {
    for ip in ["::", "fe80::1", "febf::1", "ff02::1", "ff0e::1"] {
        assert_eq!(class(ip), AddressClass::AlwaysBlocked, "{ip}");
    }
    assert_eq!(class("::1"), AddressClass::Loopback);
    for ip in [
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "2001:db8::1",
        "2001:0:4136:e378::1",
    ] {
        assert_eq!(class(ip), AddressClass::Private, "{ip}");
    }
    for ip in ["2606:4700::1111", "2a00:1450::1", "2001:4860::8888"] {
        assert_eq!(class(ip), AddressClass::Public, "{ip}");
    }
}

#[test]
fn embedded_ipv4_is_classified_by_the_ipv4_address() {
    assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
    assert_eq!(class("::ffff:10.1.2.3"), AddressClass::Private);
    assert_eq!(class("::ffff:192.168.0.1"), AddressClass::Private);
    assert_eq!(class("::ffff:169.254.169.254"), AddressClass::AlwaysBlocked);
    assert_eq!(class("::ffff:0.0.0.0"), AddressClass::AlwaysBlocked);
    assert_eq!(class("::ffff:8.8.8.8"), AddressClass::Public);
    assert_eq!(
        class("::127.0.0.1"),
        AddressClass::Loopback,
        "ipv4-compatible"
    );
    assert_eq!(class("64:ff9b::10.0.0.1"), AddressClass::Private, "nat64");
    assert_eq!(class("64:ff9b::8.8.4.4"), AddressClass::Public, "nat64");
    assert_eq!(
        class("2002:7f00:1::"),
        AddressClass::Loopback,
        "6to4 of 127.0.0.1"
    );
    assert_eq!(
        class("2002:a9fe:a9fe::1"),
        AddressClass::AlwaysBlocked,
        "6to4 of 169.254.169.254"
    );
}

#[test]
fn guard_flags_select_the_allowed_classes() {
    let strict = AddressGuard {
        allow_loopback: false,
        allow_private: false,
    };
    let loopback = AddressGuard {
        allow_loopback: true,
        allow_private: false,
    };
    let all = AddressGuard {
        allow_loopback: true,
        allow_private: true,
    };
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    assert!(strict.allows(ip("8.8.8.8")));
    assert!(!strict.allows(ip("127.0.0.1")) && loopback.allows(ip("127.0.0.1")));
    assert!(!loopback.allows(ip("10.0.0.1")) && all.allows(ip("10.0.0.1")));
    assert!(
        !all.allows(ip("169.254.169.254"))
            && !all.allows(ip("0.0.0.0"))
            && !all.allows(ip("224.0.0.1"))
    );
    assert!(!all.allows(ip("fe80::1")) && !all.allows(ip("::")) && !all.allows(ip("ff02::1")));
    assert!(!loopback.allows(ip("::ffff:10.0.0.1")) && loopback.allows(ip("::ffff:127.0.0.1")));
}

#[tokio::test]
async fn url_check_covers_literals_and_names() {
    let strict = AddressGuard {
        allow_loopback: false,
        allow_private: false,
    };
    for u in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest",
        "http://localhost:8080/",
    ] {
        let url = Url::parse(u).unwrap();
        let err = strict.check_url(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::BlockedAddress(_)), "{u}: {err}");
    }
    let loopback = AddressGuard {
        allow_loopback: true,
        allow_private: false,
    };
    assert!(loopback
        .check_url(&Url::parse("http://127.0.0.1:1/").unwrap())
        .await
        .is_ok());
    assert!(loopback
        .check_url(&Url::parse("http://localhost/").unwrap())
        .await
        .is_ok());
}

#[tokio::test]
async fn resolver_refuses_blocked_names() {
    let r = GuardedResolver {
        guard: AddressGuard {
            allow_loopback: false,
            allow_private: false,
        },
        lookup: std::sync::Arc::new(SystemLookup),
    };
    let err = r
        .resolve("localhost".parse().unwrap())
        .await
        .err()
        .expect("localhost is refused");
    assert!(err.to_string().contains(BLOCKED_MARKER), "{err}");
    let r = GuardedResolver {
        guard: AddressGuard {
            allow_loopback: true,
            allow_private: false,
        },
        lookup: std::sync::Arc::new(SystemLookup),
    };
    let addrs: Vec<SocketAddr> = r
        .resolve("localhost".parse().unwrap())
        .await
        .expect("allowed")
        .collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
}
