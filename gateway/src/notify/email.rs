//! E-mail over SMTP: one plain-text UTF-8 mail per delivery.
//!
//! Every attempt of one delivery carries the same `Message-ID: <{delivery id}@gridwatch>`, so a
//! receiving server or mail client can drop the copies a retry leaves behind. Non-ASCII subjects
//! go out RFC 2047 encoded and bodies with a transfer encoding, so the server needs no SMTPUTF8.
//!
//! The SMTP password is never in the config: it comes from the environment, like every secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

/// How the connection to the SMTP server is protected.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text all the way: only for a relay on the same host or a trusted network.
    None,
    /// Plain connect, then `STARTTLS` before anything else; refuses a server that does not offer it.
    #[default]
    StartTls,
    /// TLS from the first byte ("implicit TLS", usually port 465).
    Tls,
}

/// `[notify.smtp]`: the server mails go out through.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Host name of the SMTP server; with TLS, the name its certificate must carry.
    pub host: String,
    /// Its port: 587 for submission with STARTTLS, 465 for implicit TLS, 25 for a local relay.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// The login, if the server wants one; the password comes from `GRIDWATCH_SMTP_PASSWORD`.
    #[schemars(example = &"gridwatch")]
    pub username: Option<String>,
    /// The sender, `gridwatch@example.com` or `网格值班 <gridwatch@example.com>`.
    pub from: String,
    /// The longest one mail may take, from connecting to the server's answer to the data.
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            tls: SmtpTls::StartTls,
            username: None,
            from: "gridwatch@localhost".into(),
            timeout_ms: 10_000,
        }
    }
}

/// Why a [`Mailer`] cannot be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// `host` is empty.
    #[error("smtp.host is empty")]
    NoHost,
    /// `timeout_ms` is zero, which would fail every mail.
    #[error("smtp.timeout_ms must be above 0")]
    NoTimeout,
    /// `from` is not a mailbox.
    #[error("smtp.from {address:?} is not an e-mail address: {source}")]
    BadFrom {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        source: lettre::address::AddressError,
    },
    /// A username without a password cannot log in.
    #[error("smtp.username {0:?} is set but no SMTP password was given")]
    NoPassword(String),
    /// A password without a username is most likely a forgotten `username` line.
    #[error("an SMTP password was given but smtp.username is not set")]
    NoUsername,
    /// TLS cannot be set up for this host.
    #[error("cannot set up TLS for smtp.host {host:?}: {source}")]
    Tls {
        /// The host as configured.
        host: String,
        /// What went wrong.
        source: lettre::transport::smtp::Error,
    },
}

/// Sends mails through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Mailer {
    /// A mailer for the server in `cfg`, logging in with `password` when `cfg.username` is set.
    pub fn new(cfg: &SmtpConfig, password: Option<String>) -> Result<Self, EmailError> {
        if cfg.host.is_empty() {
            return Err(EmailError::NoHost);
        }
        if cfg.timeout_ms == 0 {
            return Err(EmailError::NoTimeout);
        }
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|source| EmailError::BadFrom {
                address: cfg.from.clone(),
                source,
            })?;
        let tls_error = |source| EmailError::Tls {
            host: cfg.host.clone(),
            source,
        };
        let builder = match cfg.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(tls_error)?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(tls_error)?
            }
        };
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut builder = builder.port(cfg.port).timeout(Some(timeout));
        match (&cfg.username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password));
            }
            (Some(user), None) => return Err(EmailError::NoPassword(user.clone())),
            (None, Some(_)) => return Err(EmailError::NoUsername),
            (None, None) => {}
        }
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
        })
    }

    /// Sends one plain-text mail to `to`; `message_id` is the delivery's idempotency id, the same
    /// on every attempt. Ok once the server accepted the mail for delivery.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        message_id: &str,
    ) -> Result<(), String> {
        let now = UNIX_EPOCH + Duration::from_millis(crate::clock::now_ms());
        let mail = message(&self.from, to, subject, text, message_id, now)?;
        // lettre's own timeout covers only the TCP connect; a server that accepts and then says
        // nothing (or a slow TLS handshake) would hold this delivery forever without this bound.
        match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("SMTP: {e}")),
            Err(_) => Err(format!(
                "SMTP: no answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// The mail itself, dated `now`.
fn message(
    from: &Mailbox,
    to: &str,
    subject: &str,
    text: &str,
    message_id: &str,
    now: SystemTime,
) -> Result<Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("bad recipient address {to:?}: {e}"))?;
    if !is_message_id_part(message_id) {
        return Err(format!(
            "message id {message_id:?} cannot go into a Message-ID header"
        ));
    }
    // A subject is one line; a line break from an alert text must not end the header early.
    let subject = subject.split(['\r', '\n']).collect::<Vec<_>>().join(" ");
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{message_id}@gridwatch>")))
        .date(now)
        // A MIME part rather than a bare body, so that `MIME-Version` announces the transfer
        // encoding the UTF-8 text needs.
        .singlepart(SinglePart::plain(text.to_owned()))
        .map_err(|e| format!("cannot build the mail: {e}"))
}

/// Whether `id` fits left of the `@` in a Message-ID (RFC 5322 `dot-atom-text` characters).
fn is_message_id_part(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_S: u64 = 1_795_000_000;

    fn from() -> Mailbox {
        "网格值班 <gridwatch@example.com>".parse().unwrap()
    }

    fn formatted(to: &str, subject: &str, text: &str, id: &str) -> String {
        let mail = message(
            &from(),
            to,
            subject,
            text,
            id,
            UNIX_EPOCH + Duration::from_secs(NOW_S),
        )
        .unwrap();
        String::from_utf8(mail.formatted()).unwrap()
    }

    /// The header block of a formatted mail, folded lines joined.
    fn headers(mail: &str) -> Vec<String> {
        let head = mail.split("\r\n\r\n").next().unwrap();
        let mut out: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            match out.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
                _ => out.push(line.to_owned()),
            }
        }
        out
    }

    fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
        let prefix = format!("{name}: ");
        headers.iter().find_map(|h| h.strip_prefix(prefix.as_str()))
    }

    #[test]
    fn a_mail_is_plain_utf8_text_with_the_delivery_as_message_id() {
        let mail = formatted(
            "wang@example.com",
            "一键呼救：3号楼",
            "2单元301室 王阿姨\n请尽快到场",
            "a1.0.w-wang",
        );
        let h = headers(&mail);
        assert_eq!(header(&h, "Message-ID"), Some("<a1.0.w-wang@gridwatch>"));
        assert_eq!(header(&h, "MIME-Version"), Some("1.0"));
        assert_eq!(header(&h, "To"), Some("wang@example.com"));
        assert_eq!(
            header(&h, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(header(&h, "Date"), Some("Wed, 18 Nov 2026 11:06:40 +0000"));
        assert!(mail.is_ascii(), "7-bit safe for servers without SMTPUTF8");
    }

    #[test]
    fn a_chinese_subject_is_rfc_2047_encoded() {
        let mail = formatted("wang@example.com", "一键呼救：3号楼", "x", "a1");
        let h = headers(&mail);
        let subject = header(&h, "Subject").unwrap();
        assert!(subject.starts_with("=?utf-8?b?"), "{subject}");
        let from = header(&h, "From").unwrap();
        assert!(from.contains("=?utf-8?b?") && from.ends_with("<gridwatch@example.com>"));
    }

    #[test]
    fn the_same_delivery_makes_the_same_message_id_every_time() {
        let a = formatted("wang@example.com", "s", "t", "a1.0.w-wang");
        let b = formatted("wang@example.com", "s", "t", "a1.0.w-wang");
        assert_eq!(
            header(&headers(&a), "Message-ID"),
            header(&headers(&b), "Message-ID")
        );
    }

    #[test]
    fn line_breaks_in_a_subject_cannot_add_headers() {
        let mail = formatted(
            "wang@example.com",
            "告警\r\nBcc: evil@example.com",
            "x",
            "a1",
        );
        let h = headers(&mail);
        assert!(header(&h, "Bcc").is_none(), "{mail}");
    }

    #[test]
    fn a_named_recipient_is_accepted() {
        let mail = formatted("王芳 <wang@example.com>", "s", "t", "a1");
        assert!(header(&headers(&mail), "To")
            .unwrap()
            .ends_with("<wang@example.com>"));
    }

    #[test]
    fn bad_recipients_are_named_in_the_error() {
        for bad in [
            "",
            "wang",
            "wang@",
            "@example.com",
            "wang@exa mple.com",
            "a@b@c",
        ] {
            let e = message(&from(), bad, "s", "t", "a1", UNIX_EPOCH).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn message_ids_that_would_break_the_header_are_refused() {
        for bad in ["", "a b", "a@b", "a>b", "<a", "a\r\nBcc: x@y", "编号"] {
            let r = message(&from(), "wang@example.com", "s", "t", bad, UNIX_EPOCH);
            assert!(r.is_err(), "{bad:?}");
        }
    }

    fn cfg() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example.com".into(),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn config_defaults_to_submission_with_starttls() {
        let c: SmtpConfig =
            toml::from_str("host = \"smtp.example.com\"\nfrom = \"gw@example.com\"").unwrap();
        assert_eq!((c.port, c.tls), (587, SmtpTls::StartTls));
        let c: SmtpConfig = toml::from_str("tls = \"tls\"\nport = 465").unwrap();
        assert_eq!((c.port, c.tls), (465, SmtpTls::Tls));
        let c: SmtpConfig = toml::from_str("tls = \"none\"").unwrap();
        assert_eq!(c.tls, SmtpTls::None);
        assert!(toml::from_str::<SmtpConfig>("password = \"x\"").is_err());
    }

    #[test]
    fn builds_for_every_kind_of_tls() {
        for tls in [SmtpTls::None, SmtpTls::StartTls, SmtpTls::Tls] {
            let c = SmtpConfig { tls, ..cfg() };
            assert!(Mailer::new(&c, None).is_ok(), "{tls:?}");
        }
        let c = SmtpConfig {
            username: Some("gw".into()),
            ..cfg()
        };
        assert!(Mailer::new(&c, Some("pw".into())).is_ok());
    }

    #[test]
    fn refuses_configs_that_could_never_send() {
        let bad_from = SmtpConfig {
            from: "值班室".into(),
            ..cfg()
        };
        let e = Mailer::new(&bad_from, None).err().unwrap();
        assert!(e.to_string().contains("\"值班室\""), "{e}");
        let no_host = SmtpConfig {
            host: String::new(),
            ..cfg()
        };
        assert!(matches!(
            Mailer::new(&no_host, None),
            Err(EmailError::NoHost)
        ));
        let no_timeout = SmtpConfig {
            timeout_ms: 0,
            ..cfg()
        };
        assert!(matches!(
            Mailer::new(&no_timeout, None),
            Err(EmailError::NoTimeout)
        ));
        let user = SmtpConfig {
            username: Some("gw".into()),
            ..cfg()
        };
        assert!(matches!(
            Mailer::new(&user, None),
            Err(EmailError::NoPassword(_))
        ));
        assert!(matches!(
            Mailer::new(&cfg(), Some("pw".into())),
            Err(EmailError::NoUsername)
        ));
    }
}
