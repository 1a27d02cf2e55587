//! Webhook, Slack and Teams deliveries: one POST through the outbound guard, judged.
//!
//! The rules (issue 13, "Delivery"): 2xx is delivered; `429` and `503` are retried, after
//! their `Retry-After` when they send one; any other `5xx`, a time-out or a connection
//! failure is retried after the delivery's back-off; any other status (`4xx`, and the
//! `1xx`/`3xx` a POST should never see) fails at once, as does a destination the guard
//! refuses.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::WireOutcome;
use crate::outbound::{FetchError, Outbound, WireResponse};

/// One attempt as the receipt records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAttempt {
    pub outcome: WireOutcome,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Time to the answer's headers; for a failure, the time until it failed.
    pub latency: Duration,
    /// Why the attempt did not deliver (for a status that is not 2xx, the status line).
    pub error: Option<String>,
    /// The first bytes of the answer (see [`crate::outbound::BODY_HEAD_BYTES`]).
    pub body_head: Option<String>,
    /// `Retry-After` as the receiver sent it.
    pub retry_after: Option<String>,
}

/// What a POST's result means for its delivery, `now` being when it was answered.
pub fn judge(result: &Result<WireResponse, FetchError>, now: DateTime<Utc>) -> WireOutcome {
    match result {
        Ok(response) if response.is_success() => WireOutcome::Delivered,
        Ok(response) if matches!(response.status, 429 | 503) => WireOutcome::Retry {
            after: response.retry_after_delay(now),
        },
        Ok(response) if response.status >= 500 => WireOutcome::Retry { after: None },
        Ok(_) => WireOutcome::Failed,
        Err(FetchError::Transient(_)) => WireOutcome::Retry { after: None },
        Err(FetchError::Refused(_) | FetchError::Forbidden(_)) => WireOutcome::Failed,
    }
}

/// POSTs `body` once and says what happened. The caller signs: `headers` already hold
/// `webhook-id` (the delivery's, the same on every attempt), `webhook-timestamp` and
/// `webhook-signature`, or whatever the channel type needs, and `content-type`.
pub async fn deliver(
    outbound: &Outbound,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
    timeout: Duration,
) -> HttpAttempt {
    let started = std::time::Instant::now();
    let result = outbound.post(url, headers, body, timeout).await;
    let outcome = judge(&result, Utc::now());
    match result {
        Ok(response) => HttpAttempt {
            outcome,
            status: Some(response.status),
            latency: response.latency,
            error: (!response.is_success()).then(|| status_line(response.status)),
            body_head: Some(response.body_head),
            retry_after: response.retry_after,
        },
        Err(err) => HttpAttempt {
            outcome,
            status: None,
            latency: started.elapsed(),
            error: Some(err.to_string()),
            body_head: None,
            retry_after: None,
        },
    }
}

fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("the receiver answered {status} {reason}"),
        None => format!("the receiver answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, retry_after: Option<&str>) -> Result<WireResponse, FetchError> {
        Ok(WireResponse {
            status,
            latency: Duration::from_millis(3),
            body_head: String::new(),
            retry_after: retry_after.map(str::to_owned),
        })
    }

    #[test]
    fn statuses_are_judged_as_the_issue_says() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap_or_else(|_| unreachable!())
            .with_timezone(&Utc);
        let retry = |after| WireOutcome::Retry { after };
        assert_eq!(judge(&answered(200, None), now), WireOutcome::Delivered);
        assert_eq!(judge(&answered(204, None), now), WireOutcome::Delivered);
        assert_eq!(
            judge(&answered(429, Some("7")), now),
            retry(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            judge(&answered(503, Some("Sun, 01 Mar 2026 12:00:30 GMT")), now),
            retry(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            judge(&answered(503, Some("Sun, 01 Mar 2026 11:00:00 GMT")), now),
            retry(Some(Duration::ZERO))
        );
        assert_eq!(judge(&answered(429, Some("soon")), now), retry(None));
        assert_eq!(judge(&answered(500, None), now), retry(None));
        assert_eq!(judge(&answered(400, None), now), WireOutcome::Failed);
        assert_eq!(judge(&answered(410, None), now), WireOutcome::Failed);
        assert_eq!(
            judge(&Err(FetchError::Transient("timed out".into())), now),
            retry(None)
        );
        assert_eq!(
            judge(&Err(FetchError::Forbidden("loopback".into())), now),
            WireOutcome::Failed
        );
    }
}
