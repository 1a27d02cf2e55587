//! The `[notify]` section: how notifications leave the process (the SMTP relay, the
//! webhook time-out) and the key that seals channel secrets at rest.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// The notifier's wire settings. Webhook destinations themselves are per channel (in the
/// store); they go through the `[outbound]` guard like every other URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// File holding the 32-byte key (64 hex digits) that seals channel secrets (webhook
    /// signing secrets, SMTP and chat tokens) in the store. Unset: the key in
    /// `<data_dir>/notify-secrets.key`, generated on first use with mode 0600. Losing the
    /// key makes every stored channel secret unreadable.
    pub secrets_key_file: Option<PathBuf>,
    /// Seconds one webhook, Slack or Teams POST may take, answer included.
    pub webhook_timeout_secs: u64,
    pub smtp: SmtpSettings,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            secrets_key_file: None,
            webhook_timeout_secs: 10,
            smtp: SmtpSettings::default(),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpMode {
    /// No TLS at all: only for a relay on the same host (the development sink).
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

/// The SMTP relay email channels send through. The defaults reach the development sink
/// of `ops/services.sh` (127.0.0.1:2525, no TLS, no credentials): fine for the embedded
/// profile on one machine, never for a relay across a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub mode: SmtpMode,
    /// User name for SMTP AUTH; unset: no authentication.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender address of channels that name none (`Name <addr>` or `addr`).
    pub from: String,
    /// Seconds for each SMTP command, the connection included.
    pub timeout_secs: u64,
    /// PEM file of one or more CA certificates to trust for the relay's certificate, in
    /// addition to the built-in public roots (`starttls` and `tls` modes): a relay whose
    /// certificate a private CA signed. Read when the process starts; an unreadable file
    /// or one with no certificate makes every email delivery fail with that reason.
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 2525,
            mode: SmtpMode::Plain,
            username: None,
            password: None,
            from: "Stella <stella@localhost>".to_owned(),
            timeout_secs: 30,
            ca_file: None,
        }
    }
}

impl SmtpSettings {
    /// Whether the relay is on this machine, where a plain connection crosses no network.
    pub fn is_local(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use crate::load;
    use crate::testing::{env, file};

    #[test]
    fn the_smtp_password_is_never_shown() {
        let f = file(
            "[notify.smtp]\nhost = \"smtp.example.com\"\nport = 587\nmode = \"starttls\"\n\
             username = \"mailer\"\npassword = \"hunter2\"\n",
        );
        let loaded = load(Some(f.path()), &env(&[])).unwrap();
        let smtp = &loaded.settings.notify.smtp;
        assert_eq!(smtp.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(smtp.mode, super::SmtpMode::Starttls);
        let shown = loaded.show();
        assert!(!format!("{shown:?}").contains("hunter2"));
        assert!(!format!("{:?}", loaded.settings).contains("hunter2"));
        let row = shown
            .iter()
            .find(|row| row.key == "notify.smtp.password")
            .unwrap();
        assert_eq!(row.value.as_deref(), Some("\"[redacted]\""));
        let host = shown
            .iter()
            .find(|row| row.key == "notify.smtp.host")
            .unwrap();
        assert_eq!(host.value.as_deref(), Some("\"smtp.example.com\""));
    }

    #[test]
    fn credentials_over_a_plain_connection_across_a_network_are_refused() {
        let err = load(
            None,
            &env(&[
                ("STELLA_NOTIFY_SMTP_HOST", "smtp.example.com"),
                ("STELLA_NOTIFY_SMTP_USERNAME", "mailer"),
                ("STELLA_NOTIFY_SMTP_PASSWORD", "hunter2"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`notify.smtp.mode`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // The same credentials to the sink on this machine are fine.
        load(
            None,
            &env(&[
                ("STELLA_NOTIFY_SMTP_USERNAME", "mailer"),
                ("STELLA_NOTIFY_SMTP_PASSWORD", "hunter2"),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn a_ca_file_needs_a_tls_mode() {
        let err = load(
            None,
            &env(&[("STELLA_NOTIFY_SMTP_CA_FILE", "/etc/stella/smtp-ca.pem")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`notify.smtp.ca_file`"), "{err}");
        assert!(err.contains("plain"), "{err}");
        let loaded = load(
            None,
            &env(&[
                ("STELLA_NOTIFY_SMTP_CA_FILE", "/etc/stella/smtp-ca.pem"),
                ("STELLA_NOTIFY_SMTP_MODE", "tls"),
            ]),
        )
        .unwrap();
        assert_eq!(
            loaded.settings.notify.smtp.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/stella/smtp-ca.pem"))
        );
    }

    #[test]
    fn a_mode_that_does_not_exist_names_the_key() {
        let err = load(None, &env(&[("STELLA_NOTIFY_SMTP_MODE", "ssl")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid value for `notify.smtp.mode` from environment variable"),
            "{err}"
        );
    }
}
