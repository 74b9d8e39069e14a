//! The SMTP transport (lettre, rustls, tokio): Amazon SES's SMTP interface in AWS (STARTTLS
//! with the credentials of the Secrets Manager secret), MailDev locally (plain, no login).

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};

use super::Message;
use crate::error::{Error, Result};

/// Where and as whom mail is sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub sender: String,
    /// Login for the server; with credentials the connection is upgraded by STARTTLS, which
    /// the server must offer. Without them (MailDev) the connection stays plain.
    pub credentials: Option<(String, String)>,
}

impl SmtpConfig {
    /// `SMTP_HOST` (127.0.0.1), `SMTP_PORT` (1025: MailDev) and `SENDER_ADDRESS`; no login
    /// (the notifier adds the one of its secret).
    pub fn from_env() -> Result<Self> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let port = var("SMTP_PORT", "1025");
        Ok(SmtpConfig {
            host: var("SMTP_HOST", "127.0.0.1"),
            port: port
                .parse()
                .map_err(|_| Error::internal(format!("SMTP_PORT {port:?} is not a port")))?,
            sender: var("SENDER_ADDRESS", "Waldur <noreply@example.com>"),
            credentials: None,
        })
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Self> {
        let sender = config
            .sender
            .parse()
            .map_err(|err| Error::internal(format!("sender address {:?}: {err}", config.sender)))?;
        let builder = match &config.credentials {
            Some((user, password)) => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|err| Error::internal(format!("SMTP host {:?}: {err}", config.host)))?
                .credentials(Credentials::new(user.clone(), password.clone())),
            None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let transport = builder
            .port(config.port)
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Mailer { transport, sender })
    }

    /// Sends one message; an address the mail cannot be built for is refused as `Internal`
    /// (retrying would not help), anything the server does as `Mail`.
    pub async fn send(&self, to: &str, message: &Message) -> Result<()> {
        let recipient: Mailbox = to
            .parse()
            .map_err(|err| Error::internal(format!("recipient address {to:?}: {err}")))?;
        let mail = Mail::builder()
            .from(self.sender.clone())
            .to(recipient)
            .subject(message.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|err| Error::internal(format!("mail to {to}: {err}")))?;
        self.transport
            .send(mail)
            .await
            .map(|_| ())
            .map_err(|err| Error::Mail(format!("SMTP: {err}")))
    }
}
