//! How the projection loop runs: as the live index (optionally an HA writer behind a
//! [`Fence`]) or as a replay. One enum, built in one place per kind, so the loop asks
//! the mode what to do instead of reading a set of flags that must agree.

use std::time::Duration;

use tokio::sync::watch;

use crate::fencing::Fence;
use crate::replay::{ReplayOptions, ReplayProgress};
use crate::Config;

/// How long a replay waits for more events once a batch has its first: replays read a
/// backlog, so batches fill at once.
const REPLAY_LINGER: Duration = Duration::from_millis(20);

/// The loop's mode.
pub(crate) enum Mode {
    /// The live index: retries opening the database and the stream until they answer,
    /// publishes what batches produce (dead letters, `images.indexed`,
    /// `crawl.completed`, recent completions at start), runs until shutdown. An HA
    /// writer has a fence: it publishes only while primary, and every transaction is
    /// fenced by its epoch.
    Live {
        /// HA: the writer's node and the pointer it follows.
        fence: Option<Fence>,
    },
    /// A replay: fails at once if the database or the stream is missing, publishes
    /// nothing (it was published when the events were first applied), stops once
    /// everything up to `until` (or the stream's end at start, if smaller) is applied,
    /// unless it follows.
    Replay {
        /// The last sequence to apply.
        until: u64,
        /// Once caught up, keep applying (still without publishing).
        follow: bool,
        /// Where to report progress after every batch.
        progress: Option<watch::Sender<ReplayProgress>>,
    },
}

impl Mode {
    /// The live index of one database.
    pub(crate) fn live() -> Mode {
        Mode::Live { fence: None }
    }

    /// The live writer of one HA node.
    pub(crate) fn fenced(fence: Fence) -> Mode {
        Mode::Live { fence: Some(fence) }
    }

    /// A replay with `options`.
    pub(crate) fn replay(
        options: &ReplayOptions,
        progress: Option<watch::Sender<ReplayProgress>>,
    ) -> Mode {
        Mode::Replay {
            until: options.until.unwrap_or(u64::MAX),
            follow: options.follow,
            progress,
        }
    }

    /// Whether the loop publishes what batches produce (live), subject to the fence.
    pub(crate) fn publishes(&self) -> bool {
        matches!(self, Mode::Live { .. })
    }

    /// Whether opening the database and stream is retried until they answer.
    pub(crate) fn patient(&self) -> bool {
        self.publishes()
    }

    /// The last sequence to apply (none: until shutdown).
    pub(crate) fn until(&self) -> Option<u64> {
        match self {
            Mode::Live { .. } => None,
            Mode::Replay { until, .. } => Some(*until),
        }
    }

    /// Whether to keep applying once caught up with [`Mode::until`].
    pub(crate) fn follows(&self) -> bool {
        matches!(self, Mode::Replay { follow: true, .. })
    }

    /// The fence of an HA writer.
    pub(crate) fn fence(&self) -> Option<&Fence> {
        match self {
            Mode::Live { fence } => fence.as_ref(),
            Mode::Replay { .. } => None,
        }
    }

    /// The fence of an HA writer, to update its role and stash.
    pub(crate) fn fence_mut(&mut self) -> Option<&mut Fence> {
        match self {
            Mode::Live { fence } => fence.as_mut(),
            Mode::Replay { .. } => None,
        }
    }

    /// Where to report progress.
    pub(crate) fn progress(&self) -> Option<&watch::Sender<ReplayProgress>> {
        match self {
            Mode::Replay { progress, .. } => progress.as_ref(),
            Mode::Live { .. } => None,
        }
    }

    /// Events per transaction.
    pub(crate) fn batch_size(&self, config: &Config) -> usize {
        match self {
            Mode::Live { .. } => config.batch_size(),
            Mode::Replay { .. } => config.replay_batch_size,
        }
        .max(1)
    }

    /// How long to wait for more events once a batch has its first.
    pub(crate) fn linger(&self, config: &Config) -> Duration {
        match self {
            Mode::Live { .. } => config.batch_wait(),
            Mode::Replay { .. } => REPLAY_LINGER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_replay_differ_as_documented() {
        let config = Config::default();
        let live = Mode::live();
        assert!(live.publishes() && live.patient() && !live.follows());
        assert_eq!(live.until(), None);
        assert!(live.fence().is_none() && live.progress().is_none());
        let options = ReplayOptions {
            until: Some(42),
            follow: true,
        };
        let replay = Mode::replay(&options, None);
        assert!(!replay.publishes() && !replay.patient() && replay.follows());
        assert_eq!(replay.until(), Some(42));
        assert_eq!(replay.linger(&config), REPLAY_LINGER);
        assert_eq!(replay.batch_size(&config), config.replay_batch_size.max(1));
        assert_eq!(live.batch_size(&config), config.batch_size().max(1));
        let all = Mode::replay(&ReplayOptions::default(), None);
        assert_eq!(all.until(), Some(u64::MAX), "to the stream's end at start");
        assert!(!all.follows());
    }
}
