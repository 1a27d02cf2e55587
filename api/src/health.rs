use std::future::Future;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use stella_store::StoreError;

use crate::Context;

/// Each dependency gets this long to answer before it counts as not ready.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
}

/// Liveness: the process is up and serving. Never touches a dependency.
pub(crate) async fn healthz(context: web::Data<Context>) -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: context.started_at.elapsed().as_secs(),
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    ready: bool,
    backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    latency_ms: u64,
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    store: Check,
    mailbox: Check,
    objects: Check,
}

async fn check(backend: String, probe: impl Future<Output = Result<(), StoreError>>) -> Check {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    };
    Check {
        ready: error.is_none(),
        backend,
        error,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Readiness: the store, the mailbox and the object store each answer. 503 with the
/// failing check's error otherwise, so a load balancer stops routing here and an operator
/// sees why.
pub(crate) async fn readyz(context: web::Data<Context>) -> HttpResponse {
    let store = &context.store;
    let mailbox = check(context.mailbox.kind().into(), context.mailbox.ping());
    let objects = context.objects.store();
    let (store, mailbox, objects) = tokio::join!(
        check(store.backend().id().into(), store.ping()),
        mailbox,
        check(objects.backend().id().into(), objects.ping()),
    );
    let ready = store.ready && mailbox.ready && objects.ready;
    for (name, check) in [
        ("store", &store),
        ("mailbox", &mailbox),
        ("objects", &objects),
    ] {
        context
            .metrics
            .dependency_up
            .with_label_values(&[name])
            .set(i64::from(check.ready));
    }
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            store,
            mailbox,
            objects,
        },
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
