//! CPU time used by the benchmark's processes, from `/proc`: a measure of work that,
//! unlike wall time, does not depend on what else the machine is doing.

use std::collections::HashMap;

/// CPU seconds of each party at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// This process alone (the replays run in it; the servers are its children).
    pub bench: f64,
    /// The PostgreSQL server: postmaster, backends (exited ones included).
    pub postgres: f64,
    /// The nats-server.
    pub nats: f64,
}

impl Cpu {
    /// Now, for a PostgreSQL postmaster `pg` and a nats-server `nats`.
    pub fn now(pg: u32, nats: u32) -> Cpu {
        let table = processes();
        let me = table.get(&std::process::id()).map_or(0, |s| s.own);
        Cpu {
            bench: me as f64 / TICKS,
            postgres: tree(pg, &table),
            nats: tree(nats, &table),
        }
    }

    /// What was used since `earlier`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            bench: self.bench - earlier.bench,
            postgres: self.postgres - earlier.postgres,
            nats: self.nats - earlier.nats,
        }
    }
}

/// Per process: parent, own CPU ticks, waited-for children's CPU ticks.
struct Stat {
    ppid: u32,
    own: u64,
    reaped: u64,
}

fn processes() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(stat) = read(pid) {
            out.insert(pid, stat);
        }
    }
    out
}

fn read(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    Some(Stat {
        ppid: n(1) as u32,
        own: n(11) + n(12),
        reaped: n(13) + n(14),
    })
}

/// CPU seconds of `root` and its descendants (exited, waited-for ones included).
fn tree(root: u32, table: &HashMap<u32, Stat>) -> f64 {
    let Some(stat) = table.get(&root) else {
        return 0.0;
    };
    let mut ticks = stat.own + stat.reaped;
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (pid, s) in table.iter().filter(|(_, s)| s.ppid == p) {
            ticks += s.own;
            stack.push(*pid);
        }
    }
    ticks as f64 / TICKS
}

/// Clock ticks per second of `/proc` times (`CLK_TCK`, 100 on Linux).
const TICKS: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu() {
        let before = tree(std::process::id(), &processes());
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x != 1);
        let after = tree(std::process::id(), &processes());
        assert!(after > before, "{before} -> {after}");
    }
}
