//! The HTTP half of the client commands: a [`Client`] for the admin API under
//! `/api/v1`, and the [`ClientError`] every client command fails with, whose
//! [`ExitKind`] is the process's exit code.

use std::time::{Duration, Instant};

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cli::output::Format;

/// Exit codes of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// Anything else (including a job that ended failed when waiting).
    Failure = 1,
    /// 401 or 403: no token, a bad token, or a missing scope.
    Auth = 3,
    /// 404.
    NotFound = 4,
    /// 409: the resource's state does not allow it, or the id is taken.
    Conflict = 5,
    /// 400, 413, 415: the request is wrong.
    Invalid = 6,
    /// The server could not be reached, answered 5xx, or asked to slow down (429).
    Unavailable = 7,
    /// `export verify`: a file does not match what the export's manifest pins.
    Checksum = 8,
    /// `export verify`: a signature is missing, over other bytes, or does not verify.
    Signature = 9,
}

/// A failed client command: one line for stderr and its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ClientError {
    pub(crate) kind: ExitKind,
    pub(crate) message: String,
    /// The server's problem document (RFC 9457), when the server answered with one.
    pub(crate) problem: Option<Value>,
}

impl ClientError {
    pub(crate) fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            problem: None,
        }
    }

    /// The error as JSON output prints it: the problem's fields (`type`, `status`,
    /// `detail`, `request_id`, `location`) when there is one, plus the one-line
    /// `message` and the process's `exit_code`.
    pub(crate) fn to_json(&self) -> Value {
        let mut error = match &self.problem {
            Some(Value::Object(fields)) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        error.insert("message".into(), self.message.clone().into());
        error.insert("exit_code".into(), (self.kind as u8).into());
        json!({ "error": error })
    }
}

pub(crate) type Result<T> = std::result::Result<T, ClientError>;

/// A connection to a Stella server.
#[derive(Debug)]
pub(crate) struct Client {
    http: Http,
    server: String,
    token: Option<String>,
    tenant: Option<String>,
    pub(crate) format: Format,
}

impl Client {
    pub(crate) fn new(
        server: &str,
        token: Option<String>,
        tenant: Option<String>,
        format: Format,
    ) -> Result<Self> {
        let http = Http::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("stella-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientError::new(ExitKind::Failure, err.to_string()))?;
        Ok(Self {
            http,
            server: server.trim_end_matches('/').to_owned(),
            token,
            tenant,
            format,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.server));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Stella-Tenant", tenant);
        }
        request
    }

    fn send(&self, request: RequestBuilder) -> Result<Value> {
        decode(self.transport(request)?)
    }

    /// Sends a request; a server that cannot be reached is exit code 7.
    fn transport(&self, request: RequestBuilder) -> Result<Response> {
        request.send().map_err(|err| {
            ClientError::new(
                ExitKind::Unavailable,
                format!("cannot reach {}: {err}", self.server),
            )
        })
    }

    pub(crate) fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
    }

    pub(crate) fn post_empty(&self, path: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path))
    }

    pub(crate) fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::PATCH, path).json(body))
    }

    pub(crate) fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::DELETE, path))
    }

    /// Posts raw bytes (an SBOM, a VEX document) with a content type.
    pub(crate) fn post_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value> {
        self.send(
            self.request(reqwest::Method::POST, path)
                .query(query)
                .header("content-type", content_type)
                .body(body),
        )
    }

    /// Posts a file, streamed from disk (an image archive of gigabytes), with a content
    /// type; the request may take up to an hour.
    pub(crate) fn post_file(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        file: &std::path::Path,
    ) -> Result<Value> {
        let unreadable = |err: std::io::Error| {
            ClientError::new(
                ExitKind::Invalid,
                format!("cannot read {}: {err}", file.display()),
            )
        };
        let opened = std::fs::File::open(file).map_err(unreadable)?;
        let size = opened.metadata().map_err(unreadable)?.len();
        self.send(
            self.request(reqwest::Method::POST, path)
                .query(query)
                .header("content-type", content_type)
                .timeout(Duration::from_secs(3600))
                .body(reqwest::blocking::Body::sized(opened, size)),
        )
    }

    /// The body of a successful GET as the server sent it, byte for byte.
    pub(crate) fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let response = self.transport(self.request(reqwest::Method::GET, path))?;
        if !response.status().is_success() {
            return decode(response).map(|_| Vec::new());
        }
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|err| ClientError::new(ExitKind::Unavailable, err.to_string()))
    }

    /// A GET with extra request headers (a `Range` resume) whose body, on success, is
    /// streamed into the writer `open` gives for the status (206 or 200); returns that
    /// status.
    pub(crate) fn get_into<W: std::io::Write>(
        &self,
        path: &str,
        headers: &[(&str, String)],
        open: impl FnOnce(u16) -> Result<W>,
    ) -> Result<u16> {
        let mut request = self.request(reqwest::Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = self.transport(request)?;
        let status = response.status();
        if !status.is_success() {
            return decode(response).map(|_| status.as_u16());
        }
        let mut out = open(status.as_u16())?;
        response
            .copy_to(&mut out)
            .map_err(|err| ClientError::new(ExitKind::Unavailable, err.to_string()))?;
        out.flush()
            .map_err(|err| ClientError::new(ExitKind::Failure, format!("writing: {err}")))?;
        Ok(status.as_u16())
    }

    /// The body at any http(s) URL (not the API: no token is sent), as `advisories
    /// import URL` reads a collection.
    pub(crate) fn fetch(&self, url: &str) -> Result<Vec<u8>> {
        let response = self.http.get(url).send().map_err(|err| {
            ClientError::new(ExitKind::Unavailable, format!("cannot fetch {url}: {err}"))
        })?;
        if !response.status().is_success() {
            return Err(ClientError::new(
                ExitKind::Unavailable,
                format!("{url} answered {}", response.status()),
            ));
        }
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|err| ClientError::new(ExitKind::Unavailable, err.to_string()))
    }

    /// Reads `path` every `interval` until the state `progress` reads from it is one of
    /// `ended`, and returns the last read with that state; a spinner shows `what` and
    /// the progress meanwhile. Still not ended after `timeout` is exit code 1.
    pub(crate) fn wait_until(
        &self,
        path: &str,
        what: &str,
        ended: &[&str],
        (interval, timeout): (Duration, Duration),
        progress: impl Fn(&Value) -> (String, String),
    ) -> Result<(Value, String)> {
        let started = Instant::now();
        let spinner = spinner();
        loop {
            let value = self.get(path, &[])?;
            let (state, detail) = progress(&value);
            spinner.set_message(format!("{what}: {detail}"));
            if ended.contains(&state.as_str()) {
                spinner.finish_and_clear();
                return Ok((value, state));
            }
            if started.elapsed() > timeout {
                spinner.finish_and_clear();
                return Err(ClientError::new(
                    ExitKind::Failure,
                    format!("{what} still {state} after {} s", timeout.as_secs()),
                ));
            }
            std::thread::sleep(interval);
        }
    }

    /// Reads a Server-Sent Event stream, calling `on_event(name, data)` for each event
    /// until it returns `false` or the stream ends: `Ok(true)` if the server offered the
    /// stream, `Ok(false)` when it did not (an older server: the caller polls instead).
    /// With `timeout`, reading past it is an error naming `what`.
    pub(crate) fn read_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(&str, &Value) -> bool,
    ) -> Result<bool> {
        use std::io::BufRead as _;
        let mut request = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .header("accept", "text/event-stream");
        // The client's default 60 s would cut a quiet stream: heartbeats keep it alive.
        request = request.timeout(timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
        let Ok(response) = request.send() else {
            return Ok(false);
        };
        if !response.status().is_success() {
            return Ok(false);
        }
        let mut event = String::new();
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else {
                return Err(ClientError::new(
                    ExitKind::Failure,
                    match timeout {
                        Some(t) => format!("{what} still running after {} s", t.as_secs()),
                        None => format!("{what}: the stream broke off"),
                    },
                ));
            };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(data).unwrap_or_default();
                if !on_event(&event, &data) {
                    return Ok(true);
                }
            }
        }
        Ok(true)
    }

    /// Follows a job's event stream (`…/stream`) until its `end` event, showing each state
    /// change (and an export's items written) on the spinner: `Ok(true)` once it ended,
    /// `Ok(false)` when the server offers no stream (the caller polls instead).
    pub(crate) fn follow(&self, path: &str, what: &str, timeout: Duration) -> Result<bool> {
        let spinner = spinner();
        let mut ended = false;
        let mut state = String::new();
        let offered = self.read_stream(path, &[], what, Some(timeout), |event, data| {
            match event {
                "end" => {
                    ended = true;
                    return false;
                }
                "progress" => spinner.set_message(format!(
                    "{what}: {state}, {} of {} items",
                    data["items_done"], data["items_total"]
                )),
                _ => {
                    state = format!(
                        "{} ({})",
                        data["state"].as_str().unwrap_or("?"),
                        data["step"].as_str().unwrap_or("")
                    );
                    spinner.set_message(format!("{what}: {state}"));
                }
            }
            true
        });
        spinner.finish_and_clear();
        Ok(offered? && ended)
    }

    /// Every page of a list (with `all`), or one page.
    pub(crate) fn list(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        all: bool,
    ) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            let page = self.get(path, &query)?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            let next = page.get("next_cursor").and_then(Value::as_str);
            match (all, next) {
                (true, Some(cursor)) => {
                    query.retain(|(k, _)| *k != "cursor");
                    query.push(("cursor", cursor.to_owned()));
                }
                _ => {
                    return Ok(json!({ "items": items, "next_cursor": next }));
                }
            }
        }
    }

    /// Prints a value as [`Format::print`] does.
    pub(crate) fn print(&self, value: &Value, columns: &[&str]) {
        self.format.print(value, columns);
    }
}

/// A progress spinner on stderr when it is a terminal, hidden otherwise.
fn spinner() -> indicatif::ProgressBar {
    let spinner = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Percent-encodes one URL path segment, so an id can never add or climb segments.
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~') && raw != "." && raw != ".."
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(response: Response) -> Result<Value> {
    let status = response.status();
    let text = response.text().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(body);
    }
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default();
    let kind = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ExitKind::Auth,
        StatusCode::NOT_FOUND => ExitKind::NotFound,
        StatusCode::CONFLICT => ExitKind::Conflict,
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => ExitKind::Invalid,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ExitKind::Unavailable,
        _ => ExitKind::Failure,
    };
    Err(ClientError {
        problem: body.is_object().then_some(body.clone()),
        ..ClientError::new(kind, format!("{} {}{location}", status.as_u16(), detail))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_json_carries_the_problem_and_the_exit_code() {
        let err = ClientError {
            problem: Some(json!({
                "type": "urn:stella:problem:not-found", "status": 404,
                "detail": "tenant nope not found", "request_id": "r1"
            })),
            ..ClientError::new(ExitKind::NotFound, "404 tenant nope not found")
        };
        let json = err.to_json();
        assert_eq!(json["error"]["type"], "urn:stella:problem:not-found");
        assert_eq!(json["error"]["status"], 404);
        assert_eq!(json["error"]["request_id"], "r1");
        assert_eq!(json["error"]["exit_code"], 4);
        assert_eq!(json["error"]["message"], "404 tenant nope not found");
        let plain = ClientError::new(ExitKind::Unavailable, "cannot reach x").to_json();
        assert_eq!(
            plain,
            json!({"error": {"message": "cannot reach x", "exit_code": 7}})
        );
    }
}
