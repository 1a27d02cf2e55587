//! Console sessions: a random id in an `HttpOnly; SameSite=Strict` cookie, and on the
//! server, keyed by the id's SHA-256, the token the operator signed in with, a CSRF token
//! and the tenant an administrator is looking at.
//!
//! Sessions live in this process's memory, not in the database: they end when the
//! process stops (the operator signs in again), and behind a load balancer the console
//! needs sticky sessions. Keeping the token's secret here (never in the browser) lets
//! every console request authenticate exactly as a bearer request does, so a revoked or
//! expired token, or a disabled tenant, ends the session on its next request.
//!
//! Bounded: a session ends after [`IDLE`] without a request or [`LIFETIME`] after sign-in,
//! and at most [`MAX_SESSIONS`] are held, [`MAX_SESSIONS_PER_TOKEN`] per token (the one
//! unused longest is dropped first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use stella_store::TenantId;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "stella_console";

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(60 * 60);

/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Sessions held at most; signing in past it drops the oldest.
pub const MAX_SESSIONS: usize = 10_000;

/// Sessions one token may hold at once (browsers, tabs signed in separately); a new one
/// past this ends that token's longest-unused session.
pub const MAX_SESSIONS_PER_TOKEN: usize = 16;

/// One signed-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// The API token's secret: authenticated again on every request.
    pub(crate) secret: String,
    /// The token every state-changing form carries back.
    pub(crate) csrf: String,
    /// The tenant an administrator token looks at (a tenant token has its own).
    pub(crate) tenant: Option<TenantId>,
    created: Instant,
    seen: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.tenant)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Equal strings, compared in time that depends only on their lengths.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for the token with this secret; returns the cookie's value.
    pub(crate) fn open(&self, secret: String, now: Instant) -> String {
        let id = random_hex();
        let mut sessions = self.lock();
        sessions.retain(|_, s| live(s, now));
        // A token signing in again and again displaces only its own sessions; the table
        // as a whole drops the one unused longest. Otherwise one token could sign every
        // other operator out by filling the table.
        let own: Vec<(&String, &Session)> = sessions
            .iter()
            .filter(|(_, s)| s.secret == secret)
            .collect();
        let evict = if own.len() >= MAX_SESSIONS_PER_TOKEN {
            own.iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| (*k).clone())
        } else if sessions.len() >= MAX_SESSIONS {
            sessions
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| k.clone())
        } else {
            None
        };
        if let Some(evict) = evict {
            sessions.remove(&evict);
        }
        sessions.insert(
            key(&id),
            Session {
                secret,
                csrf: random_hex(),
                tenant: None,
                created: now,
                seen: now,
            },
        );
        id
    }

    /// The live session of this cookie value, marked as used now.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.lock();
        let k = key(id);
        match sessions.get_mut(&k) {
            Some(session) if live(session, now) => {
                session.seen = now;
                Some(session.clone())
            }
            Some(_) => {
                sessions.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Points an administrator's session at a tenant.
    pub(crate) fn set_tenant(&self, id: &str, tenant: Option<TenantId>) {
        if let Some(session) = self.lock().get_mut(&key(id)) {
            session.tenant = tenant;
        }
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// Sessions held now (expired ones included until the next sign-in sweeps them).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.seen) < IDLE && now.duration_since(session.created) < LIFETIME
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_only_and_ends_when_idle_or_old() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let id = sessions.open("stella_secret_0123456789".into(), start);
        assert_eq!(id.len(), 64);
        let session = sessions.get(&id, start).unwrap();
        assert_eq!(session.secret, "stella_secret_0123456789");
        assert_eq!(session.csrf.len(), 64);
        // Stored under the id's hash: the id itself is not a key.
        assert!(!sessions.lock().contains_key(&id));
        assert!(sessions.get("not-a-session", start).is_none());
        // Used within the idle time, it lives on...
        let later = start + IDLE - Duration::from_secs(1);
        assert!(sessions.get(&id, later).is_some());
        // ...until it is idle for IDLE.
        assert!(sessions.get(&id, later + IDLE).is_none());
        assert!(
            sessions.is_empty(),
            "an expired session is dropped when read"
        );

        let id = sessions.open("stella_secret_0123456789".into(), start);
        let mut at = start;
        while at < start + LIFETIME - IDLE {
            at += IDLE / 2;
            assert!(sessions.get(&id, at).is_some());
        }
        assert!(
            sessions.get(&id, start + LIFETIME).is_none(),
            "not past its lifetime, however busy"
        );
        let id = sessions.open("stella_secret_0123456789".into(), start);
        sessions.close(&id);
        assert!(sessions.get(&id, start).is_none());
    }

    #[test]
    fn a_token_signing_in_again_and_again_displaces_only_its_own_sessions() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let operator = sessions.open("stella_operator".into(), start);
        let mut own = Vec::new();
        for i in 0..(MAX_SESSIONS_PER_TOKEN as u64 + 5) {
            own.push(sessions.open("stella_noisy".into(), start + Duration::from_millis(i)));
        }
        let now = start + Duration::from_secs(1);
        assert!(
            sessions.get(&operator, now).is_some(),
            "another token's session survives"
        );
        let live = own
            .iter()
            .filter(|id| sessions.get(id, now).is_some())
            .count();
        assert_eq!(live, MAX_SESSIONS_PER_TOKEN);
        // The newest ones are kept, the longest unused went first.
        assert!(sessions.get(own.last().unwrap(), now).is_some());
        assert!(sessions.get(&own[0], now).is_none());
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
