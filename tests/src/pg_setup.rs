//! Finding the PostgreSQL binaries and preparing data directories cheaply.
//!
//! `initdb` runs once per machine and PostgreSQL version into a template under the
//! target dir (`pg-template-<version>`; creation is serialised by a lock file and
//! published by an atomic rename); every test copies the template. As root, `initdb` and
//! `postgres` run as an unprivileged user (see [`unprivileged`]) that owns the copies.

use std::fs::File;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::process::{output, target_dir, Identity};
use crate::HarnessError;

/// The PostgreSQL server binaries in use.
#[derive(Debug, Clone)]
pub struct PgBin {
    /// Directory holding `initdb`, `postgres`, `pg_ctl`, ...
    pub dir: PathBuf,
    /// The server version, e.g. `15.18`.
    pub version: String,
}

impl PgBin {
    /// A command for PostgreSQL program `program`, run as `ident` when given.
    pub fn command(&self, program: &str, ident: Option<Identity>) -> Command {
        let mut cmd = Command::new(self.dir.join(program));
        if let Some(id) = ident {
            cmd.uid(id.uid).gid(id.gid);
        }
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        cmd
    }
}

/// The binaries: `IMGCRAWL_PG_BIN`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`. Looked up once per process.
pub fn pg_bin() -> Result<PgBin, HarnessError> {
    static BIN: OnceLock<Result<PgBin, String>> = OnceLock::new();
    BIN.get_or_init(find_bin)
        .clone()
        .map_err(|detail| HarnessError::Binary {
            what: "postgresql".into(),
            detail,
        })
}

fn find_bin() -> Result<PgBin, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("IMGCRAWL_PG_BIN") {
        candidates.push(PathBuf::from(p));
    } else {
        if let Ok(out) = output(Command::new("pg_config").arg("--bindir")) {
            candidates.push(PathBuf::from(out.trim()));
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    for dir in &candidates {
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            let out = output(Command::new(dir.join("postgres")).arg("--version"))
                .map_err(|e| e.to_string())?;
            let version = out
                .split_whitespace()
                .nth(2)
                .unwrap_or("unknown")
                .to_string();
            return Ok(PgBin {
                dir: dir.clone(),
                version,
            });
        }
    }
    Err(format!(
        "no initdb and postgres found (set IMGCRAWL_PG_BIN); tried {candidates:?}"
    ))
}

/// The template data directory for `bin`, created by `initdb` on first use.
/// Blocking: call from a blocking context.
pub fn template(bin: &PgBin, ident: Option<Identity>) -> Result<PathBuf, HarnessError> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let target = target_dir();
    std::fs::create_dir_all(&target)
        .map_err(HarnessError::io(format!("create {}", target.display())))?;
    let path = target.join(format!("pg-template-{}", bin.version));
    if path.join("PG_VERSION").is_file() {
        return Ok(path);
    }
    let lock_path = target.join(format!("pg-template-{}.lock", bin.version));
    let lock = File::create(&lock_path)
        .map_err(HarnessError::io(format!("create {}", lock_path.display())))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(HarnessError::io("lock the postgres template")(
            std::io::Error::last_os_error(),
        ));
    }
    if path.join("PG_VERSION").is_file() {
        return Ok(path);
    }
    let scratch = tempfile::Builder::new()
        .prefix("imgcrawl-initdb-")
        .tempdir()
        .map_err(HarnessError::io("initdb temp dir"))?;
    let data = scratch.path().join("data");
    if let Some(id) = ident {
        chown_tree(scratch.path(), id)?;
    }
    let mut cmd = bin.command("initdb", ident);
    cmd.current_dir(scratch.path()).arg("-D").arg(&data);
    cmd.args([
        "-A",
        "trust",
        "-U",
        "imgcrawl",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
        "--wal-segsize=1",
    ]);
    output(&mut cmd)?;
    let staging = target.join(format!(
        "pg-template-{}.tmp-{}",
        bin.version,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&data, &staging)?;
    std::fs::rename(&staging, &path)
        .map_err(HarnessError::io(format!("publish {}", path.display())))?;
    Ok(path)
}

/// Copies directory `from` to `to` (which must not exist), keeping file modes; `to`
/// itself gets mode 0700 as PostgreSQL requires.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), HarnessError> {
    let err = |what: &str, p: &Path| HarnessError::io(format!("{what} {}", p.display()));
    std::fs::create_dir(to).map_err(err("create", to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))
        .map_err(err("chmod", to))?;
    for entry in std::fs::read_dir(from).map_err(err("read", from))? {
        let entry = entry.map_err(err("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(err("stat", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(err("copy", &src))?;
        }
    }
    Ok(())
}

/// Gives `path` and everything under it to `id`.
pub fn chown_tree(path: &Path, id: Identity) -> Result<(), HarnessError> {
    chown(path, Some(id.uid), Some(id.gid))
        .map_err(HarnessError::io(format!("chown {}", path.display())))?;
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).map_err(HarnessError::io(format!("read {}", path.display())))?
        {
            let entry = entry.map_err(HarnessError::io(format!("read {}", path.display())))?;
            chown_tree(&entry.path(), id)?;
        }
    }
    Ok(())
}
