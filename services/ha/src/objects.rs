//! Object stores: health-checked and reported, not failed over. A local directory is
//! checked by writing and removing a probe file; other targets (`s3://...`) are listed
//! as unchecked (the store stage writes to its one configured target; failing the
//! bucket over is not built).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::ObjectStoreNode;

/// An object store in the status.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectState {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// `up`, `down` or `unchecked`.
    pub health: &'static str,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was last checked.
    pub last_check_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    dir: Option<PathBuf>,
}

impl ObjectState {
    /// A store not checked yet.
    pub fn new(node: &ObjectStoreNode) -> ObjectState {
        let t = node.target.as_str();
        let dir = match t.strip_prefix("file://") {
            Some(p) => Some(PathBuf::from(p)),
            None if !t.contains("://") => Some(PathBuf::from(t)),
            None => None,
        };
        ObjectState {
            name: node.name.clone(),
            priority: node.priority,
            health: "unchecked",
            last_error: None,
            last_check_at: None,
            dir,
        }
    }

    /// The directory to check, if it is one.
    pub fn dir(&self) -> Option<PathBuf> {
        self.dir.clone()
    }

    /// Records a check of the directory.
    pub fn record(&mut self, result: Result<(), String>) {
        self.last_check_at = Some(Utc::now());
        match result {
            Ok(()) => {
                self.health = "up";
                self.last_error = None;
            }
            Err(e) => {
                self.health = "down";
                self.last_error = Some(e);
            }
        }
    }
}

/// Writes and removes a probe file in `dir` (blocking).
pub fn check_dir(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".imgcrawl-ha-probe");
    std::fs::write(&probe, b"ok").map_err(|e| format!("write {}: {e}", probe.display()))?;
    std::fs::remove_file(&probe).map_err(|e| format!("remove {}: {e}", probe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_checked_and_other_targets_are_not() {
        let tmp = std::env::temp_dir();
        let node = |t: &str| ObjectStoreNode {
            name: "o".into(),
            target: t.into(),
            priority: 1,
        };
        let mut d = ObjectState::new(&node(&format!("file://{}", tmp.display())));
        d.record(check_dir(&d.dir().unwrap()));
        assert_eq!(d.health, "up");
        assert!(ObjectState::new(&node("s3://bucket/p")).dir().is_none());
        assert!(check_dir(std::path::Path::new("/nonexistent/imgcrawl")).is_err());
    }
}
