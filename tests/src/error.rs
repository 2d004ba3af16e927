//! Errors of the harness: which component could not be found, started or reached.

/// What went wrong setting up a test component.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A required binary is missing or too old.
    #[error("{what}: {detail}")]
    Binary {
        /// The binary looked for.
        what: String,
        /// What was tried, what was found.
        detail: String,
    },
    /// A command ran but failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status and output.
        detail: String,
    },
    /// File system work failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A component did not become ready in time (or exited).
    #[error("{what} not ready: {detail}")]
    NotReady {
        /// The component.
        what: String,
        /// Why, with the tail of its log.
        detail: String,
    },
    /// A database statement failed.
    #[error("database: {0}")]
    Database(String),
}

impl HarnessError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
