//! Finding the nats-server the local stack runs: >= 2.10, from the environment, a
//! checkout, the per-user tools directory or the `PATH`, else installed into the
//! per-user tools directory by the embedded installer.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The oldest nats-server the pipeline works with (design §2: 2.9 silently drops
/// consumer fields, and async-nats cannot create KV buckets on it).
pub const MIN_VERSION: (u64, u64) = (2, 10);

/// The installer, embedded so that the binary can install a server from any
/// directory (the same script `just` and CI run in a checkout).
const INSTALL_SCRIPT: &str = include_str!("../../../../infra/scripts/install-nats.sh");

/// Finds a nats-server >= [`MIN_VERSION`], in this order: `IMGCRAWL_NATS_SERVER`, a
/// checkout's `./.tools/bin`, the per-user tools directory ([`user_tools_dir`]), the
/// `PATH`; if none is there, installs one into the per-user tools directory, saying so.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IMGCRAWL_NATS_SERVER") {
        let p = PathBuf::from(p);
        check_version(&p)?;
        return Ok(p);
    }
    let user = user_tools_dir()?;
    let candidates = [
        PathBuf::from(".tools/bin/nats-server"),
        user.join("bin/nats-server"),
    ];
    for c in candidates.iter().chain(on_path("nats-server").iter()) {
        if c.is_file() && check_version(c).is_ok() {
            return Ok(std::fs::canonicalize(c)?);
        }
    }
    install(&user)
}

/// Where `imgcrawl` keeps the tools it installs for itself: `IMGCRAWL_TOOLS_DIR`, else
/// `$XDG_DATA_HOME/imgcrawl/tools`, else `~/.local/share/imgcrawl/tools`.
pub fn user_tools_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("IMGCRAWL_TOOLS_DIR") {
        return Ok(PathBuf::from(d));
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").context(
                "neither XDG_DATA_HOME nor HOME is set: set IMGCRAWL_NATS_SERVER or IMGCRAWL_TOOLS_DIR",
            )?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(data.join("imgcrawl/tools"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Fails unless `bin` runs and reports a version >= [`MIN_VERSION`].
pub fn check_version(bin: &Path) -> Result<()> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("run {} --version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_version(&text) {
        Some(v) if v >= MIN_VERSION => Ok(()),
        Some((major, minor)) => bail!(
            "{} is nats-server {major}.{minor}; imgcrawl needs >= {}.{}",
            bin.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        ),
        None => bail!("{} did not report a nats-server version", bin.display()),
    }
}

/// `(major, minor)` of the first `N.N.N` in `nats-server --version`'s output.
fn parse_version(text: &str) -> Option<(u64, u64)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|w| {
            let mut parts = w.split('.');
            let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
            c.parse::<u64>().ok()?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
}

/// Installs nats-server into `dir` with the embedded installer (Debian's package,
/// unpacked; see `infra/scripts/install-nats.sh`).
fn install(dir: &Path) -> Result<PathBuf> {
    eprintln!(
        "installing nats-server >= {}.{} into {} (first time only) ...",
        MIN_VERSION.0,
        MIN_VERSION.1,
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let script = dir.join("install-nats.sh");
    std::fs::write(&script, INSTALL_SCRIPT)
        .with_context(|| format!("write {}", script.display()))?;
    let out = Command::new("bash")
        .arg(&script)
        .env("IMGCRAWL_TOOLS_DIR", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .context("run the nats-server installer (bash)")?;
    if !out.status.success() {
        bail!(
            "could not install nats-server: {}; install nats-server >= {}.{} yourself and set IMGCRAWL_NATS_SERVER to it",
            String::from_utf8_lossy(&out.stderr).trim(),
            MIN_VERSION.0,
            MIN_VERSION.1
        );
    }
    let bin = dir.join("bin/nats-server");
    check_version(&bin)?;
    eprintln!("installed {}", bin.display());
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_read_from_the_servers_banner() {
        assert_eq!(parse_version("nats-server: v2.10.27\n"), Some((2, 10)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert_eq!(parse_version("nats-server: v2.12.0-RC.1"), Some((2, 12)));
        assert_eq!(parse_version("command not found"), None);
    }
}
