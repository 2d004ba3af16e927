//! Errors at the read model's boundary, named after the operation that failed.

/// What went wrong reading or writing the projection.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// Could not connect to PostgreSQL.
    #[error(
        "cannot connect to postgres at {url}: {source} (is the stack running? try `imgcrawl up`)"
    )]
    Connect {
        /// The URL tried, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Running the embedded migrations failed.
    #[error("migrate: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed; `op` names what it was doing.
    #[error("postgres {op}: {source}")]
    Database {
        /// The operation, e.g. `insert pages`.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl ReadModelError {
    /// The driver's error, if a statement or the connection failed.
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            ReadModelError::Connect { source, .. } | ReadModelError::Database { source, .. } => {
                Some(source)
            }
            ReadModelError::Migrate(_) => None,
        }
    }

    /// The operation that failed (`connect` and `migrate` for those variants).
    pub fn op(&self) -> &'static str {
        match self {
            ReadModelError::Connect { .. } => "connect",
            ReadModelError::Migrate(_) => "migrate",
            ReadModelError::Database { op, .. } => op,
        }
    }
}

/// The driver's error, for callers that classify failures by it (the API tells an
/// unavailable database from a broken statement).
impl From<ReadModelError> for sqlx::Error {
    fn from(e: ReadModelError) -> sqlx::Error {
        match e {
            ReadModelError::Connect { source, .. } | ReadModelError::Database { source, .. } => {
                source
            }
            ReadModelError::Migrate(m) => sqlx::Error::Migrate(Box::new(m)),
        }
    }
}

/// Wraps a driver error with the operation it interrupted.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> ReadModelError {
    move |source| ReadModelError::Database { op, source }
}
