//! Child processes of the harness: spawned in their own process group (so a kill reaches
//! every process a server forks), signalled as a group, killed on drop; plus the
//! unprivileged identity used for programs that refuse to run as root, and paths of the
//! workspace.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A user and group to run a program as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// When running as root: the unprivileged identity for programs that refuse root
/// (`IMGCRAWL_TEST_USER`, default `nobody`). `None` when not root.
pub fn unprivileged() -> Result<Option<Identity>, HarnessError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let user = std::env::var("IMGCRAWL_TEST_USER").unwrap_or_else(|_| "nobody".into());
    let id = |flag: &str| -> Result<u32, HarnessError> {
        let out = output(Command::new("id").args([flag, &user]))?;
        out.trim().parse().map_err(|_| HarnessError::Binary {
            what: format!("id {flag} {user}"),
            detail: out,
        })
    };
    Ok(Some(Identity {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// Runs `cmd` to completion; its stdout, or an error with its output.
pub fn output(cmd: &mut Command) -> Result<String, HarnessError> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(HarnessError::io(what.clone()))?;
    if !out.status.success() {
        let detail = format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return Err(HarnessError::Command { what, detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `max` bytes of a log file, for error messages.
pub fn log_tail(path: &Path, max: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
    }
    format!("log {}:\n{text}", path.display())
}

/// A child process leading its own process group; SIGKILLed (group-wide) on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Spawns `cmd` in a new process group, stdout and stderr appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Proc, HarnessError> {
        let what = format!("spawn {:?}", cmd.get_program());
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(HarnessError::io(log.display().to_string()))?;
        let err = out
            .try_clone()
            .map_err(HarnessError::io(log.display().to_string()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(HarnessError::io(what))?;
        Ok(Proc { child })
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the leader only.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned; failure (already gone) is harmless.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Sends `signal` to the leader, its process group and every descendant (servers
    /// such as PostgreSQL put their children in sessions of their own).
    pub fn signal_tree(&self, signal: i32) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, its group and its descendants; failure
        // (already gone) is harmless.
        unsafe {
            libc::kill(pid, signal);
            libc::kill(-pid, signal);
        }
        for p in descendants(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(p, signal) };
        }
    }

    /// The exit status if the leader has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILLs the leader and every descendant (freezing the leader first so it cannot
    /// fork meanwhile), reaps the leader, and waits (up to 5 s) until the others are gone.
    pub fn kill(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        if self.exited().is_none() {
            // SAFETY: kill(2) on our own, still unreaped child.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        let rest = descendants(pid);
        self.signal_tree(libc::SIGKILL);
        for &p in &rest {
            // SAFETY: kill(2) on a process that descended from our child.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while rest.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the leader, waits up to `grace` for it to exit, then kills.
    pub async fn terminate(&mut self, signal: i32, grace: Duration) {
        self.signal_tree(libc::SIGCONT);
        self.signal(signal);
        let deadline = Instant::now() + grace;
        while self.exited().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(pid, parent pid, state)` of every process, from `/proc`.
fn processes() -> Vec<(libc::pid_t, libc::pid_t, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = rest.next()?.chars().next()?;
            Some((pid, rest.next()?.parse().ok()?, state))
        })
        .collect()
}

/// Every live descendant of `pid`.
fn descendants(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let all = processes();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(p, _, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_reaches_grandchildren_in_their_own_session() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "setsid sleep 300 & sleep 300 & wait"]);
        let mut p = Proc::spawn(&mut cmd, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut kids = descendants(p.pid() as libc::pid_t);
        while kids.len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            kids = descendants(p.pid() as libc::pid_t);
        }
        assert_eq!(kids.len(), 2, "{kids:?}");
        p.kill();
        assert!(p.exited().is_some());
        assert!(kids.iter().all(|&k| !alive(k)), "descendants survived");
    }
}
