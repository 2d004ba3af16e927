//! Where the pipeline's infrastructure is: flags and environment over the local
//! stack's defaults.

use clap::Args;

use crate::stack;

/// Connection settings shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// NATS server URL (default: the local stack's).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// PostgreSQL URL of the index (default: the local stack's).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Bucket for the object projection: a directory, `file:///path` or
    /// `s3://bucket/prefix` (S3 credentials and endpoint from the AWS_* variables).
    #[arg(long, env = "IMGCRAWL_BUCKET", global = true)]
    pub bucket: Option<String>,
}

impl Settings {
    /// The NATS URL to use.
    pub fn nats_url(&self) -> String {
        self.nats_url
            .clone()
            .unwrap_or_else(stack::default_nats_url)
    }

    /// The database URL to use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(stack::default_database_url)
    }

    /// The bucket to use.
    pub fn bucket(&self) -> anyhow::Result<String> {
        match &self.bucket {
            Some(b) => Ok(b.clone()),
            None => stack::default_bucket(),
        }
    }

    /// Is this the local stack (nothing pointed elsewhere)?
    pub fn is_local(&self) -> bool {
        self.nats_url.is_none() && self.database_url.is_none()
    }

    /// Bus settings for these connection settings.
    pub fn bus(&self, client_name: &str) -> imgcrawl_bus::BusConfig {
        imgcrawl_bus::BusConfig {
            client_name: client_name.into(),
            ..imgcrawl_bus::BusConfig::with_url(self.nats_url())
        }
    }

    /// Connects to NATS (creating the topology), with an error that says what to do.
    pub async fn connect_bus(&self, client_name: &str) -> anyhow::Result<imgcrawl_bus::Bus> {
        Ok(imgcrawl_bus::Bus::connect(self.bus(client_name)).await?)
    }

    /// Connects to the index database.
    pub async fn connect_db(&self) -> anyhow::Result<sqlx::PgPool> {
        let url = self.database_url();
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to postgresql at {}: {e} (is the stack running? try `imgcrawl up`)", redact(&url)))
    }
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
