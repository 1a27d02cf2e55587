use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use stella_config::redact_url;

use crate::error::{Backend, Result, StoreError};

/// A connection pool to Valkey (or Redis), the substrate of the durable mailboxes.
#[derive(Clone)]
pub struct Valkey {
    pool: Pool,
    url: String,
}

impl std::fmt::Debug for Valkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valkey").field("url", &self.url).finish()
    }
}

impl Valkey {
    /// Builds the pool; no connection is made until first use (see [`Valkey::ping`]).
    pub fn new(url: &str, pool_size: usize) -> Result<Self> {
        let redacted = redact_url(url);
        // The redis crate knows redis:// and rediss://; valkey:// is the same protocol.
        let url = url
            .replacen("valkeys://", "rediss://", 1)
            .replacen("valkey://", "redis://", 1);
        let mut config = Config::from_url(url);
        let timeout = Some(Duration::from_secs(5));
        config.pool = Some(PoolConfig {
            max_size: pool_size,
            timeouts: Timeouts {
                wait: timeout,
                create: timeout,
                recycle: timeout,
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| StoreError::Invalid(format!("valkey URL {redacted}: {err}")))?;
        Ok(Self {
            pool,
            url: redacted,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The URL with its password redacted, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.get().await.map_err(|err| self.unavailable(err))?;
        let pong: String = deadpool_redis::redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|err| self.unavailable(err))?;
        if pong != "PONG" {
            return Err(self.unavailable(format!("unexpected PING reply {pong:?}")));
        }
        Ok(())
    }

    fn unavailable(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            backend: Backend::Valkey,
            reason: format!("{}: {err}", self.url),
        }
    }
}
