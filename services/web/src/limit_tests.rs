//! Tests of the rate limiter: the burst and the rate, keys, the bound on memory, and
//! that no client can reset another.

use super::*;
use governor::clock::FakeRelativeClock;

fn limiter(
    per_second: f64,
    burst: u32,
    max_clients: usize,
) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let config = RateLimit {
        per_second,
        burst,
        max_clients,
    };
    (
        Limiter::with_clock(&config, TrustedProxies::default(), clock.clone()),
        clock,
    )
}

fn v4(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

#[test]
fn a_burst_is_allowed_then_the_rate() {
    let (l, clock) = limiter(2.0, 3, 10);
    for _ in 0..3 {
        assert!(l.check(v4(1)).is_ok());
    }
    let wait = l.check(v4(1)).unwrap_err();
    assert!(
        wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    clock.advance(Duration::from_millis(500));
    assert!(l.check(v4(1)).is_ok());
    assert!(l.check(v4(1)).is_err());
    // another client has its own bucket
    assert!(l.check(v4(2)).is_ok());
}

#[test]
fn ipv6_clients_are_their_slash_64_and_mapped_v4_is_v4() {
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    assert_eq!(client_key(a), client_key(b));
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(client_key(mapped), v4(1));
}

#[test]
fn many_new_clients_neither_grow_the_table_nor_reset_anyone() {
    let (l, clock) = limiter(1.0, 2, 4);
    // the victim uses up its burst
    assert!(l.check(v4(1)).is_ok());
    assert!(l.check(v4(1)).is_ok());
    assert!(l.check(v4(1)).is_err());
    // an attacker with a thousand addresses
    for i in 0..1000u32 {
        let ip = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
        let _ = l.check(ip);
        clock.advance(Duration::from_micros(10));
    }
    assert!(l.clients() <= 4, "{} clients remembered", l.clients());
    // the victim is still limited: its bucket was not forgotten and refilled
    assert!(
        l.check(v4(1)).is_err(),
        "the flood reset the victim's bucket"
    );
    // and the newcomers shared one overflow bucket, which they emptied
    assert!(l.check(IpAddr::from([10, 9, 9, 9])).is_err());
    // once buckets refill, the table is pruned and a new client gets its own
    clock.advance(Duration::from_secs(5));
    assert!(l.check(IpAddr::from([10, 9, 9, 9])).is_ok());
    assert!(l.check(v4(1)).is_ok());
}

#[test]
fn extreme_rates_neither_panic_nor_turn_the_limit_off() {
    for rate in [1e-300, 1e-9, 1e12, f64::MAX] {
        let (l, _) = limiter(rate, 1, 4);
        assert!(l.enabled(), "{rate}");
        assert!(l.check(v4(1)).is_ok(), "{rate}");
    }
    let (slow, _) = limiter(1e-300, 1, 4);
    assert!(slow.check(v4(1)).is_ok());
    assert!(slow.check(v4(1)).is_err(), "one request a day at most");
}

#[test]
fn zero_turns_it_off() {
    let (off, _) = limiter(0.0, 1, 4);
    assert!(!off.enabled());
    for _ in 0..10 {
        assert!(off.check(v4(1)).is_ok());
    }
}
