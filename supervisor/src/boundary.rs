use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// A handler panicked; the message is what it panicked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    pub message: String,
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}

/// Runs `work` and catches a panic inside it, so a bug in one handler fails one attempt
/// instead of the process. The work must not leave shared state half-updated across the
/// panic: handlers keep their state in the store, whose transactions roll back.
///
/// Not an `async fn`: one would keep its argument and the future it moves into, twice
/// the size of `work`, and every job in flight holds one (docs/BENCHMARKS.md, "Memory").
pub fn run_guarded<F, T>(work: F) -> impl Future<Output = Result<T, Panicked>>
where
    F: Future<Output = T>,
{
    AssertUnwindSafe(work).catch_unwind().map(|caught| {
        caught.map_err(|payload| Panicked {
            message: panic_message(payload.as_ref()),
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        let ok = run_guarded(async { 41 + 1 }).await;
        assert_eq!(ok, Ok(42));
        let err = run_guarded(async {
            let attempt = 3;
            if attempt == 3 {
                panic!("a step panics on attempt {attempt}");
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.message, "a step panics on attempt 3");
        let err = run_guarded(async { std::panic::panic_any(7_u8) })
            .await
            .unwrap_err();
        assert_eq!(err.message, "non-string panic payload");
    }

    #[tokio::test]
    async fn a_panic_after_an_await_is_caught_too() {
        let err = run_guarded(async {
            tokio::task::yield_now().await;
            panic!("late");
        })
        .await
        .unwrap_err();
        assert_eq!(err.message, "late");
    }
}
