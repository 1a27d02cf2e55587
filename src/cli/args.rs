//! Arguments several commands share: the ranges every number on the command line is
//! checked against, and the paging flags of lists.

// Every number on the command line is range-checked where it is parsed: a typo is exit
// code 2 naming the allowed range, never an overflow (or a panic) further in.
/// The longest any `--timeout-secs` waits: a day.
pub(crate) const MAX_WAIT_SECS: u64 = 86_400;
/// The furthest a token's expiry may be: 100 years (the server refuses beyond).
pub(crate) const MAX_EXPIRY_DAYS: i64 = 36_500;
pub(crate) const MAX_JITTER_SECS: i64 = stella_scheduler::spec::MAX_JITTER_SECS as i64;
/// Jobs, messages or tenants a benchmark or diagnostic creates.
pub(crate) const MAX_COUNT: u64 = 100_000_000;
pub(crate) const MAX_TENANTS: i64 = 1_000_000;
pub(crate) const MAX_RUNS: u64 = 100_000;

/// A percentage from 0 to 100.
pub(crate) fn percent(raw: &str) -> Result<f64, String> {
    let value: f64 = raw.parse().map_err(|err| format!("{err}"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{raw} is not in 0..=100"))
    }
}

// The paging flags of every list (no doc comment: a flattened struct's would become the
// `about` of the command it is flattened into).
#[derive(Debug, clap::Args)]
pub(crate) struct PageArgs {
    /// Items per page (1-500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: Option<u32>,
    /// Continue after this cursor (printed after a partial page).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub(crate) all: bool,
}

impl PageArgs {
    /// The query of the first page.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        query
    }

    /// [`query`](Self::query) with an optional filter of the list added.
    pub(crate) fn query_with(
        &self,
        filters: &[(&'static str, Option<&String>)],
    ) -> Vec<(&'static str, String)> {
        let mut query = self.query();
        for (key, value) in filters {
            if let Some(value) = value {
                query.push((key, (*value).clone()));
            }
        }
        query
    }
}
