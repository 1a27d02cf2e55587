//! Connecting the configured backends for a command: the one place the server
//! commands, the benchmarks and the diagnostics share (so none imports another).

use std::future::Future;

use stella_config::Loaded;

use crate::{Services, StartupError};

/// Runs `future` to completion on a new actix system (the runtime and the HTTP server
/// need one).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    actix_web::rt::System::new().block_on(future)
}

/// Connects the configured backends; a failure names the setting to check.
pub(crate) async fn connect(loaded: &Loaded) -> anyhow::Result<Services> {
    Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))
}

/// Connects the configured backends and runs `work` on them in a new actix system; the
/// library's benchmarks and diagnostics keep their error chains.
pub(crate) fn with_services<T>(
    loaded: &Loaded,
    work: impl AsyncFnOnce(&Services) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    block_on(async {
        let services = connect(loaded).await?;
        work(&services).await
    })
}

/// A startup error with which setting to check, and where its value came from.
pub(crate) fn explain(loaded: &Loaded, err: StartupError) -> anyhow::Error {
    anyhow::anyhow!(
        "{} (check `{}`, set by {})",
        err.message,
        err.key,
        loaded.source_of(err.key)
    )
}
