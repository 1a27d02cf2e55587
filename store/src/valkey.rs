use std::time::Duration;

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{cluster, Config, Pool, PoolConfig, Runtime, Timeouts};
use stella_config::redact_url;

use crate::error::{Backend, Result, StoreError};

/// A connection pool to Valkey (or Redis), the substrate of the durable mailboxes: one
/// server, or a Valkey Cluster.
#[derive(Clone)]
pub struct Valkey {
    pools: Pools,
    url: String,
}

#[derive(Clone)]
enum Pools {
    Single(Pool),
    Cluster(cluster::Pool),
}

impl std::fmt::Debug for Valkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valkey")
            .field("url", &self.url)
            .field("cluster", &self.is_cluster())
            .finish()
    }
}

impl Valkey {
    /// Builds the pool; no connection is made until first use (see [`Valkey::ping`]).
    /// With `cluster`, `url` is one or more comma-separated node URLs of a Valkey
    /// Cluster (the client discovers the others); a list of several implies `cluster`.
    pub fn new(url: &str, pool_size: usize, cluster: bool) -> Result<Self> {
        let redacted = redact_url(url);
        // The redis crate knows redis:// and rediss://; valkey:// is the same protocol.
        let urls: Vec<String> = url
            .split(',')
            .map(|url| {
                url.trim().replacen("valkeys://", "rediss://", 1).replacen(
                    "valkey://",
                    "redis://",
                    1,
                )
            })
            .filter(|url| !url.is_empty())
            .collect();
        let timeout = Some(Duration::from_secs(5));
        let pool_config = PoolConfig {
            max_size: pool_size,
            timeouts: Timeouts {
                wait: timeout,
                create: timeout,
                recycle: timeout,
            },
            ..PoolConfig::default()
        };
        let invalid = |err: &dyn std::fmt::Display| {
            StoreError::Invalid(format!("valkey URL {redacted}: {err}"))
        };
        let pools = if cluster || urls.len() > 1 {
            let mut config = cluster::Config::from_urls(urls);
            config.pool = Some(pool_config);
            Pools::Cluster(
                config
                    .create_pool(Some(Runtime::Tokio1))
                    .map_err(|err| invalid(&err))?,
            )
        } else {
            let url = urls.into_iter().next().unwrap_or_default();
            let mut config = Config::from_url(url);
            config.pool = Some(pool_config);
            Pools::Single(
                config
                    .create_pool(Some(Runtime::Tokio1))
                    .map_err(|err| invalid(&err))?,
            )
        };
        Ok(Self {
            pools,
            url: redacted,
        })
    }

    /// Whether this is a Valkey Cluster (key names then carry hash tags).
    pub fn is_cluster(&self) -> bool {
        matches!(self.pools, Pools::Cluster(_))
    }

    /// A connection from the pool.
    pub async fn conn(&self) -> Result<Conn> {
        match &self.pools {
            Pools::Single(pool) => pool.get().await.map(Conn::Single),
            Pools::Cluster(pool) => pool.get().await.map(|c| Conn::Cluster(Box::new(c))),
        }
        .map_err(|err| self.unavailable(err))
    }

    /// The URL with its password redacted, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that the server answers (on a cluster: every primary).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let pong: String = redis::cmd("PING")
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

/// A pooled connection to one server or to a cluster. Commands and pipelines go where
/// their keys live (on a cluster: the primary of the first key's slot; a pipeline's keys
/// must share one slot).
pub enum Conn {
    Single(deadpool_redis::Connection),
    Cluster(Box<cluster::Connection>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    /// Runs `cmd`, which names no key, on the server that holds `key`: on a cluster the
    /// primary of `key`'s slot (`WAITAOF` after writes to that slot, for instance).
    pub async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(conn) => cmd.query_async(conn).await,
            Conn::Cluster(conn) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = conn.route_command(cmd.clone(), routing).await?;
                redis::from_redis_value(value).map_err(Into::into)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
