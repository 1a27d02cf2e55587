//! Generation counters (`advisories`, `vex`): bumped in the transaction that changes
//! what they name, so a process knows when its cached advisory index is stale.

use crate::error::Result;
use crate::Store;

/// Bumps a generation counter inside a transaction.
pub(crate) async fn bump_generation<'c, E>(executor: E, store: &Store, name: &str) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("UPDATE generations SET value = value + 1 WHERE name = $1")
        .bind(name)
        .execute(executor)
        .await
        .map_err(|e| store.err(e, "generation"))?;
    Ok(())
}

/// The current value of a generation counter (`advisories`, `vex`): it changes whenever
/// the data it names changes, so a cache keyed by it is never stale.
pub async fn generation(store: &Store, name: &str) -> Result<i64> {
    let row: (i64,) = sqlx::query_as("SELECT value FROM generations WHERE name = $1")
        .bind(name)
        .fetch_one(&store.pool)
        .await
        .map_err(|e| store.err(e, "generation"))?;
    Ok(row.0)
}
