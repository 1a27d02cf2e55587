//! Email deliveries: one message handed to the SMTP relay of `notify.smtp`.
//!
//! A message is `multipart/alternative` (text, then HTML, so a client shows the last part
//! it can render) or plain text alone. Its `Message-ID` comes from the delivery
//! ([`message_id_for`]), so every attempt of one delivery carries the same id and a mail
//! system (or a person's client) can fold duplicates. The relay is the administrator's
//! own, not a user-named URL: its answer text is kept in errors (bounded), since "550 5.1.1
//! user unknown" is exactly what a receipt should say.
//!
//! TLS: `notify.smtp.mode` `starttls` requires the upgrade (a relay that does not offer
//! STARTTLS gets nothing, never the message in the clear) and `tls` speaks TLS from the
//! first byte; either verifies the relay's certificate against the built-in public roots
//! and, when set, the CA certificates of `notify.smtp.ca_file`.
//!
//! Classification: an SMTP `4xx`, a connection failure, a time-out and a TLS failure are
//! transient; an SMTP `5xx`, an address that does not parse, a message that cannot be
//! built and a relay without the STARTTLS that the settings require are permanent. A TLS
//! failure is often a certificate to fix, but also a relay restarting mid-handshake; five
//! attempts then a dead letter handles both, and its receipt says what TLS said.

use std::time::{Duration, Instant};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use stella_config::{SmtpMode, SmtpSettings};

use super::WireOutcome;

/// Longest relay answer kept in an error or receipt.
const MAX_ANSWER_CHARS: usize = 300;

/// Headers [`Mail::headers`] may not set: the ones the mailer writes itself, and those
/// that would add recipients.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// One rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `Name <addr>` or `addr`; `None`: `notify.smtp.from`.
    pub from: Option<String>,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The delivery's id for the `Message-ID` header, with or without `<>`; the same on
    /// every attempt of one delivery (see [`message_id_for`]).
    pub message_id: String,
    /// Extra headers such as `X-Stella-Event`; not the ones the mailer sets itself.
    pub headers: Vec<(String, String)>,
}

/// What the relay said when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReceipt {
    /// The reply code to the end of the message (250).
    pub code: u16,
    /// The reply's text, bounded (often the relay's queue id).
    pub answer: String,
    /// From opening the connection to the reply.
    pub latency: Duration,
    /// The `Message-ID` sent, with its angle brackets.
    pub message_id: String,
}

/// Why a message was not taken, and whether another attempt can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Try again later: SMTP 4xx, connection, time-out, TLS.
    #[error("{message}")]
    Transient { code: Option<u16>, message: String },
    /// The same message fails again: SMTP 5xx, bad address, bad message, bad settings.
    #[error("{message}")]
    Permanent { code: Option<u16>, message: String },
}

impl MailError {
    fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            code: None,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// The relay's reply code, when the relay refused.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Transient { code, .. } | Self::Permanent { code, .. } => *code,
        }
    }

    pub fn outcome(&self) -> WireOutcome {
        if self.is_transient() {
            WireOutcome::Retry { after: None }
        } else {
            WireOutcome::Failed
        }
    }
}

/// The `Message-ID` of a delivery: `<delivery@domain>`, the domain being the sender's (so
/// ids from different Stella installations do not collide).
pub fn message_id_for(delivery_id: &str, from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("stella.invalid");
    format!("<{delivery_id}@{domain}>")
}

/// The SMTP client of one process: settings checked once, a connection per message.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
    mode: SmtpMode,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("relay", &self.relay)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|_| {
            MailError::permanent(format!(
                "notify.smtp.from is not an email address: {:?}",
                settings.from
            ))
        })?;
        let host = settings.host.as_str();
        let tls = || tls_parameters(settings);
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match settings.mode {
            SmtpMode::Plain => builder,
            SmtpMode::Starttls => builder.tls(Tls::Required(tls()?)),
            SmtpMode::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(settings.timeout_secs)));
        if let Some(user) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            relay: host.to_owned(),
            mode: settings.mode,
        })
    }

    /// Hands `mail` to the relay once.
    pub async fn send(&self, mail: &Mail) -> Result<SmtpReceipt, MailError> {
        let (message, message_id) = self.build(mail)?;
        let started = Instant::now();
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|err| self.classify(&err))?;
        Ok(SmtpReceipt {
            code: response.code().into(),
            answer: bounded(&response.message().collect::<Vec<_>>().join(" ")),
            latency: started.elapsed(),
            message_id,
        })
    }

    /// The message as it goes on the wire, and its `Message-ID`.
    fn build(&self, mail: &Mail) -> Result<(Message, String), MailError> {
        let from = match &mail.from {
            None => self.from.clone(),
            Some(raw) => raw.parse().map_err(|_| {
                MailError::permanent(format!("the sender {raw:?} is not an email address"))
            })?,
        };
        if mail.to.is_empty() {
            return Err(MailError::permanent("the message has no recipient"));
        }
        let id = mail
            .message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(MailError::permanent(format!(
                "{:?} is not a Message-ID",
                mail.message_id
            )));
        }
        let message_id = if id.contains('@') {
            format!("<{id}>")
        } else {
            message_id_for(id, from.email.as_ref())
        };
        let mut builder = Message::builder()
            .from(from)
            .subject(mail.subject.as_str())
            .message_id(Some(message_id.clone()))
            .date_now();
        for to in &mail.to {
            let mailbox: Mailbox = to.parse().map_err(|_| {
                MailError::permanent(format!("the recipient {to:?} is not an email address"))
            })?;
            builder = builder.to(mailbox);
        }
        for (name, value) in &mail.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(MailError::permanent(format!(
                    "the header {name} is set by the mailer itself"
                )));
            }
            if value.contains(['\r', '\n']) {
                return Err(MailError::permanent(format!(
                    "the value of the header {name} has a line break"
                )));
            }
            let header = HeaderName::new_from_ascii(name.clone()).map_err(|_| {
                MailError::permanent(format!("{name:?} is not a valid header name"))
            })?;
            builder = builder.raw_header(HeaderValue::new(header, value.clone()));
        }
        let built = match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(mail.text.clone())),
        };
        let message = built
            .map_err(|err| MailError::permanent(format!("the message cannot be built: {err}")))?;
        Ok((message, message_id))
    }

    fn classify(&self, err: &lettre::transport::smtp::Error) -> MailError {
        let relay = &self.relay;
        if let Some(code) = err.status() {
            let code = u16::from(code);
            // lettre's text is "permanent error (550): <the relay's lines>".
            let text = err.to_string();
            let answer = text.split_once("): ").map_or("", |(_, rest)| rest);
            let message = bounded(&format!("the mail server answered {code} {answer}"));
            return if err.is_permanent() {
                MailError::Permanent {
                    code: Some(code),
                    message,
                }
            } else {
                MailError::Transient {
                    code: Some(code),
                    message,
                }
            };
        }
        tracing::warn!(%relay, error = %err, "smtp delivery failed");
        // lettre nests its errors (a TLS handshake failure is a `Connection` error around
        // an I/O error around rustls's); the innermost one says what happened.
        let mut innermost: &(dyn std::error::Error + 'static) = err;
        while let Some(next) = innermost.source() {
            innermost = next;
        }
        let source = (!std::ptr::addr_eq(innermost, err)).then(|| innermost.to_string());
        // tokio-rustls reports handshake failures (a certificate, a protocol) as
        // `InvalidData` I/O errors.
        let tls_failure = err.is_tls()
            || innermost
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if self.mode == SmtpMode::Starttls
            && err.is_client()
            && source
                .as_deref()
                .is_some_and(|s| s.contains("STARTTLS is not supported"))
        {
            // Retrying the same relay gets the same answer; sending in the clear instead
            // is exactly what `starttls` forbids.
            return MailError::permanent(format!(
                "the mail server {relay} does not offer STARTTLS, which notify.smtp.mode \
                 `starttls` requires: nothing was sent"
            ));
        }
        let message = if err.is_timeout() {
            format!("the mail server {relay} timed out")
        } else if tls_failure {
            // The relay is the administrator's: what TLS said ("invalid peer certificate:
            // UnknownIssuer") is what they need to fix it.
            bounded(&format!(
                "the mail server {relay} failed in TLS: {}",
                source.as_deref().unwrap_or("no detail")
            ))
        } else if err.is_client() {
            format!("the mail server {relay} failed in the client (see the log)")
        } else {
            match source {
                Some(why) => bounded(&format!(
                    "the mail server {relay} could not be reached: {why}"
                )),
                None => format!("the mail server {relay} could not be reached"),
            }
        };
        MailError::Transient {
            code: None,
            message,
        }
    }
}

/// TLS for the relay: the public roots, and the CA certificates of `notify.smtp.ca_file`.
fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, MailError> {
    let host = &settings.host;
    let mut builder = TlsParameters::builder(host.clone());
    if let Some(path) = &settings.ca_file {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|err| {
            MailError::permanent(format!("notify.smtp.ca_file {shown} cannot be read: {err}"))
        })?;
        if !pem
            .windows(CERTIFICATE_PEM.len())
            .any(|w| w == CERTIFICATE_PEM)
        {
            return Err(MailError::permanent(format!(
                "notify.smtp.ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        let certificate = Certificate::from_pem(&pem).map_err(|err| {
            MailError::permanent(format!(
                "notify.smtp.ca_file {shown} is not valid PEM: {err}"
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|err| {
        MailError::permanent(match &settings.ca_file {
            Some(path) => format!("notify.smtp.ca_file {}: {err}", path.display()),
            None => format!("TLS for notify.smtp.host {host:?}: {err}"),
        })
    })
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// One line of at most [`MAX_ANSWER_CHARS`] characters.
fn bounded(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_ANSWER_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        Mailer::new(&SmtpSettings::default()).unwrap()
    }

    fn mail() -> Mail {
        Mail {
            from: None,
            to: vec!["ops@example.com".into()],
            subject: "Scan finished".into(),
            text: "text".into(),
            html: Some("<p>html</p>".into()),
            message_id: "d-1".into(),
            headers: vec![("X-Stella-Event".into(), "scan.completed".into())],
        }
    }

    #[test]
    fn message_ids_come_from_the_delivery_and_the_senders_domain() {
        assert_eq!(
            message_id_for("d-1", "Stella <stella@example.com>"),
            "<d-1@example.com>"
        );
        assert_eq!(message_id_for("d-1", "nobody"), "<d-1@stella.invalid>");
        let (_, id) = mailer().build(&mail()).unwrap();
        assert_eq!(id, "<d-1@localhost>");
        let with_domain = Mail {
            message_id: "<d-2@stella.example>".into(),
            ..mail()
        };
        assert_eq!(
            mailer().build(&with_domain).unwrap().1,
            "<d-2@stella.example>"
        );
    }

    #[test]
    fn bad_mail_is_a_permanent_error() {
        let cases = [
            Mail {
                to: vec![],
                ..mail()
            },
            Mail {
                to: vec!["not an address".into()],
                ..mail()
            },
            Mail {
                from: Some("nobody".into()),
                ..mail()
            },
            Mail {
                headers: vec![("Bcc".into(), "spy@example.com".into())],
                ..mail()
            },
            Mail {
                headers: vec![("X-Event".into(), "a\r\nBcc: spy@example.com".into())],
                ..mail()
            },
            Mail {
                message_id: "two words".into(),
                ..mail()
            },
        ];
        for case in cases {
            let err = mailer().build(&case).unwrap_err();
            assert!(!err.is_transient(), "{case:?}: {err}");
            assert_eq!(err.outcome(), WireOutcome::Failed);
        }
    }

    #[test]
    fn answers_are_one_bounded_line() {
        assert_eq!(bounded("250 2.0.0\n  queued as X"), "250 2.0.0 queued as X");
        assert_eq!(
            bounded(&"é".repeat(400)).chars().count(),
            MAX_ANSWER_CHARS + 1
        );
    }
}
