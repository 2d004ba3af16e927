//! Test hosts with addresses of their own: one network namespace per host, each with a
//! veth pair to a bridge in this namespace, on a /24 of 10.231.0.0/16 that only this
//! test uses. Links between hosts are cut and healed with iptables rules inside a
//! host's namespace, naming only the addresses of hosts this test created. Everything
//! (namespaces, veths, bridge) is removed on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::output;
use crate::HarnessError;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The hosts of one test.
pub struct Net {
    /// Short unique id: names of namespaces and links derive from it.
    id: String,
    /// Third octet of the hosts' subnet.
    subnet: u8,
    hosts: usize,
}

fn run(args: &[&str]) -> Result<String, HarnessError> {
    output(Command::new(args[0]).args(&args[1..]))
}

impl Net {
    /// Creates `hosts` namespaces on a fresh subnet, joined by a bridge here.
    pub fn create(hosts: usize) -> Result<Net, HarnessError> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // a subnet per test (process and counter), away from 0 and 255
        let subnet = 1 + ((pid.wrapping_mul(31).wrapping_add(n)) % 250) as u8;
        let net = Net {
            id: format!("ic{:x}{n}", pid % 0xffff),
            subnet,
            hosts,
        };
        net.setup().inspect_err(|_| net.teardown())?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.id)
    }

    /// The namespace of host `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}n{}", self.id, i + 1)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}v{}", self.id, i + 1)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    fn setup(&self) -> Result<(), HarnessError> {
        let br = self.bridge();
        run(&["ip", "link", "add", &br, "type", "bridge"])?;
        let gw = format!("10.231.{}.254/24", self.subnet);
        run(&["ip", "addr", "add", &gw, "dev", &br])?;
        run(&["ip", "link", "set", &br, "up"])?;
        for i in 0..self.hosts {
            let (ns, veth) = (self.namespace(i), self.veth(i));
            run(&["ip", "netns", "add", &ns])?;
            run(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "link", "set", &veth, "master", &br])?;
            run(&["ip", "link", "set", &veth, "up"])?;
            let addr = format!("{}/24", self.addr(i));
            run(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", "eth0",
            ])?;
            run(&[
                "ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up",
            ])?;
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Drops all traffic between host `i` and every other host of this net (both
    /// directions), inside host `i`'s namespace. This namespace can still reach it.
    pub fn isolate(&self, i: usize) -> Result<(), HarnessError> {
        let ns = self.namespace(i);
        for j in (0..self.hosts).filter(|&j| j != i) {
            let other = self.addr(j);
            run(&[
                "ip", "netns", "exec", &ns, "iptables", "-A", "INPUT", "-s", &other, "-j", "DROP",
            ])?;
            run(&[
                "ip", "netns", "exec", &ns, "iptables", "-A", "OUTPUT", "-d", &other, "-j", "DROP",
            ])?;
        }
        Ok(())
    }

    /// Removes every rule [`Net::isolate`] added for host `i`.
    pub fn rejoin(&self, i: usize) -> Result<(), HarnessError> {
        let ns = self.namespace(i);
        run(&["ip", "netns", "exec", &ns, "iptables", "-F", "INPUT"])?;
        run(&["ip", "netns", "exec", &ns, "iptables", "-F", "OUTPUT"])?;
        Ok(())
    }

    fn teardown(&self) {
        for i in 0..self.hosts {
            let _ = run(&["ip", "netns", "del", &self.namespace(i)]);
            let _ = run(&["ip", "link", "del", &self.veth(i)]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Whether this machine lets us make namespaces and cut links (root, `ip`,
/// `iptables`: `infra/scripts/bootstrap.sh` installs iptables).
pub fn available() -> bool {
    let ok = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok(&["ip", "netns", "list"]) && ok(&["iptables", "--version"])
}
