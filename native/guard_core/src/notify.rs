//! Sending the backup report by e-mail over SMTP.
//!
//! The Erlang side formats the subject and the body (one place for the wording, shared with the
//! webhook); this module only validates the settings, builds a plain-text UTF-8 message and hands
//! it to an SMTP server with [`lettre`]'s blocking transport. Every network step is bounded by
//! [`SmtpConfig::timeout`], and the whole session by [`SmtpConfig::deadline`].
//!
//! # Deadline contract
//! lettre's timeout is per socket operation: a server that trickles one byte at a time resets it
//! on every byte and could hold a session for hours. [`send_mail`] therefore runs the session on
//! a thread of its own and waits for it at most [`SmtpConfig::deadline`] (measured from the
//! call; validation and message building come first and touch no network). When the deadline
//! passes, [`send_mail`] returns [`NotifyError::Timeout`] (reason `timeout`, retryable) at once,
//! so a dirty IO scheduler calling it is free again by then. The abandoned session thread is
//! not killed (lettre does not expose its socket): it ends on its own when the server closes,
//! stops sending for one [`SmtpConfig::timeout`], or answers; its result is dropped. The
//! message may therefore still be delivered after a `timeout` was reported.
//!
//! TLS is rustls with the `ring` provider (no C toolchain beyond `cc`, no OpenSSL). Server
//! certificates are checked against the system's roots (`/etc/ssl/certs`) plus an optional CA file,
//! unless [`SmtpConfig::tls_verify`] is off.
//!
//! The password is never part of an error's text: errors carry the server's answer or the local
//! cause, nothing from the settings except addresses and paths.

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use thiserror::Error;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text for the whole session (only sensible on a trusted network or for tests).
    None,
    /// Plain connect, then `STARTTLS`; a server that does not offer it is an error (never a
    /// silent downgrade). Usually port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS", implicit TLS). Usually port 465.
    Tls,
}

impl TlsMode {
    /// Parses the setting's spelling: `none`, `starttls` or `tls`.
    ///
    /// # Errors
    /// [`NotifyError::BadConfig`] for anything else.
    ///
    /// ```
    /// use guard_core::notify::TlsMode;
    ///
    /// assert_eq!(TlsMode::parse("starttls").ok(), Some(TlsMode::StartTls));
    /// assert_eq!(TlsMode::parse("ssl").unwrap_err().reason(), "bad_config");
    /// ```
    pub fn parse(s: &str) -> Result<TlsMode, NotifyError> {
        match s {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "tls" => Ok(TlsMode::Tls),
            other => Err(NotifyError::BadConfig(format!(
                "tls must be none, starttls or tls, not {other:?}"
            ))),
        }
    }
}

/// Everything needed to deliver one message.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Host name or IP address of the SMTP server.
    pub server: String,
    /// TCP port, 1..=65535.
    pub port: u16,
    /// Connection protection.
    pub tls: TlsMode,
    /// Check the server's certificate and host name (default true). Off accepts any certificate.
    pub tls_verify: bool,
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// AUTH user name; set together with `password` or not at all.
    pub username: Option<String>,
    /// AUTH password; never printed by this crate.
    pub password: Option<String>,
    /// Envelope and `From:` sender, e.g. `emqx_guard <guard@example.com>`.
    pub from: String,
    /// One or more recipients, each an address or `Name <address>`.
    pub to: Vec<String>,
    /// Bound on connecting and on each read or write.
    pub timeout: Duration,
    /// Bound on the whole session, from the call of [`send_mail`] to its return (see the
    /// module's deadline contract). Must be positive.
    pub deadline: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_verify", &self.tls_verify)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "******"))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// What the server answered to the message's data: the reply code and its text lines joined
/// with a space, e.g. `250` and `2.0.0 Ok: queued as 4Xk2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The three-digit SMTP reply code (2xx).
    pub code: u16,
    /// The reply text.
    pub message: String,
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.message)
        }
    }
}

/// Why a message was not delivered. [`NotifyError::reason`] gives the stable atom name.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// A setting is missing or malformed (nothing was sent).
    #[error("{0}")]
    BadConfig(String),
    /// A sender or recipient is not a valid address.
    #[error("bad address {addr:?}: {detail}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        detail: String,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {path}: {detail}")]
    CaFile {
        /// The path as given.
        path: String,
        /// Why it was refused.
        detail: String,
    },
    /// The message could not be built (e.g. a header with a line break).
    #[error("cannot build the message: {0}")]
    BadMessage(String),
    /// TCP connect failed: refused, unreachable, unknown host.
    #[error("cannot connect to {server}:{port}: {detail}")]
    Connect {
        /// Server as configured.
        server: String,
        /// Port as configured.
        port: u16,
        /// The system's error.
        detail: String,
    },
    /// The server did not answer within the timeout, or the session passed its deadline.
    #[error("no answer from {server}:{port} within {secs} s: {detail}")]
    Timeout {
        /// Server as configured.
        server: String,
        /// Port as configured.
        port: u16,
        /// The timeout in seconds.
        secs: u64,
        /// The underlying error.
        detail: String,
    },
    /// TLS handshake or certificate check failed, or STARTTLS is not offered.
    #[error("TLS with {server}:{port} failed: {detail}")]
    Tls {
        /// Server as configured.
        server: String,
        /// Port as configured.
        port: u16,
        /// The underlying error.
        detail: String,
    },
    /// The server refused the credentials (codes 530, 534, 535, 538).
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The server refused permanently (5xx): sender, recipient or message.
    #[error("server refused: {0}")]
    Rejected(String),
    /// The server refused for now (4xx); trying again later may work.
    #[error("server deferred: {0}")]
    Transient(String),
    /// Anything else on the way (protocol error, connection dropped mid-session).
    #[error("SMTP error: {0}")]
    Smtp(String),
}

impl NotifyError {
    /// The stable reason atom the Erlang side matches on.
    pub fn reason(&self) -> &'static str {
        match self {
            NotifyError::BadConfig(_) => "bad_config",
            NotifyError::BadAddress { .. } => "bad_address",
            NotifyError::CaFile { .. } => "ca_file",
            NotifyError::BadMessage(_) => "bad_message",
            NotifyError::Connect { .. } => "connect",
            NotifyError::Timeout { .. } => "timeout",
            NotifyError::Tls { .. } => "tls",
            NotifyError::Auth(_) => "auth",
            NotifyError::Rejected(_) => "rejected",
            NotifyError::Transient(_) => "transient",
            NotifyError::Smtp(_) => "smtp",
        }
    }
}

/// Parses one address, `a@b.c` or `Name <a@b.c>`.
fn mailbox(addr: &str) -> Result<Mailbox, NotifyError> {
    addr.trim()
        .parse::<Mailbox>()
        .map_err(|e| NotifyError::BadAddress {
            addr: addr.to_string(),
            detail: e.to_string(),
        })
}

/// Checks the settings without touching the network: server and port present, sender and every
/// recipient valid, at least one recipient, user and password set together, CA file readable.
///
/// # Errors
/// [`NotifyError::BadConfig`], [`NotifyError::BadAddress`] or [`NotifyError::CaFile`].
///
/// ```
/// use std::time::Duration;
/// use guard_core::notify::{SmtpConfig, TlsMode};
///
/// let cfg = SmtpConfig {
///     server: "127.0.0.1".into(), // nothing listens on port 1
///     port: 1,
///     tls: TlsMode::None,
///     tls_verify: true,
///     ca_file: None,
///     username: None,
///     password: None,
///     from: "EMQX <emqx@example.com>".into(),
///     to: vec!["ops@example.com".into()],
///     timeout: Duration::from_secs(5),
///     deadline: Duration::from_secs(10),
/// };
/// assert!(guard_core::notify::validate(&cfg).is_ok());
/// let nobody = SmtpConfig { to: vec![], ..cfg.clone() };
/// assert_eq!(guard_core::notify::validate(&nobody).unwrap_err().reason(), "bad_config");
/// let wrong = SmtpConfig { to: vec!["not an address".into()], ..cfg };
/// assert_eq!(guard_core::notify::validate(&wrong).unwrap_err().reason(), "bad_address");
/// ```
pub fn validate(cfg: &SmtpConfig) -> Result<(), NotifyError> {
    let _ = checked_parts(cfg)?;
    Ok(())
}

/// The validated pieces of a config: sender, recipients and the extra CA certificates.
struct Parts {
    from: Mailbox,
    to: Vec<Mailbox>,
    roots: Vec<Certificate>,
}

fn checked_parts(cfg: &SmtpConfig) -> Result<Parts, NotifyError> {
    let server = cfg.server.trim();
    if server.is_empty() {
        return Err(NotifyError::BadConfig("no SMTP server is set".into()));
    }
    if server.chars().any(char::is_whitespace) {
        return Err(NotifyError::BadConfig(format!(
            "SMTP server {server:?} contains a space"
        )));
    }
    if cfg.port == 0 {
        return Err(NotifyError::BadConfig("SMTP port 0 is not a port".into()));
    }
    if cfg.timeout.is_zero() {
        return Err(NotifyError::BadConfig("timeout must be positive".into()));
    }
    if cfg.deadline.is_zero() {
        return Err(NotifyError::BadConfig("deadline must be positive".into()));
    }
    match (&cfg.username, &cfg.password) {
        (Some(_), None) => {
            return Err(NotifyError::BadConfig(
                "a user is set but no password".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(NotifyError::BadConfig(
                "a password is set but no user".into(),
            ))
        }
        _ => {}
    }
    if cfg.from.trim().is_empty() {
        return Err(NotifyError::BadConfig("no sender (from) is set".into()));
    }
    let from = mailbox(&cfg.from)?;
    if cfg.to.is_empty() {
        return Err(NotifyError::BadConfig("no recipient (to) is set".into()));
    }
    let to = cfg
        .to
        .iter()
        .map(|a| mailbox(a))
        .collect::<Result<Vec<_>, _>>()?;
    let roots = match &cfg.ca_file {
        None => Vec::new(),
        Some(path) => read_ca_file(path)?,
    };
    Ok(Parts { from, to, roots })
}

fn read_ca_file(path: &PathBuf) -> Result<Vec<Certificate>, NotifyError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|e| NotifyError::CaFile {
        path: shown.clone(),
        detail: e.to_string(),
    })?;
    // lettre's from_pem takes every certificate in the bundle; an empty result is an error.
    let cert = Certificate::from_pem(&pem).map_err(|e| NotifyError::CaFile {
        path: shown.clone(),
        detail: e.to_string(),
    })?;
    Ok(vec![cert])
}

/// Builds the RFC 5322 message: `From`, `To` (all recipients), `Subject`, `Date`, a plain-text
/// UTF-8 body. Exposed so tests can check what goes on the wire without a server.
///
/// # Errors
/// Config errors as [`validate`], or [`NotifyError::BadMessage`].
///
/// ```
/// # use std::time::Duration;
/// # use guard_core::notify::{SmtpConfig, TlsMode};
/// #
/// # let cfg = SmtpConfig {
/// #     server: "127.0.0.1".into(), // nothing listens on port 1
/// #     port: 1,
/// #     tls: TlsMode::None,
/// #     tls_verify: true,
/// #     ca_file: None,
/// #     username: None,
/// #     password: None,
/// #     from: "EMQX <emqx@example.com>".into(),
/// #     to: vec!["ops@example.com".into()],
/// #     timeout: Duration::from_secs(5),
/// #     deadline: Duration::from_secs(10),
/// # };
/// let message = guard_core::notify::build_message(&cfg, "backup OK", "Größe: 1.5 MiB")?;
/// let wire = String::from_utf8(message.formatted())?;
/// assert!(wire.contains("To: ops@example.com\r\n"));
/// assert!(wire.contains("Subject: backup OK\r\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_message(cfg: &SmtpConfig, subject: &str, body: &str) -> Result<Message, NotifyError> {
    let parts = checked_parts(cfg)?;
    build_from_parts(&parts, subject, body)
}

fn build_from_parts(parts: &Parts, subject: &str, body: &str) -> Result<Message, NotifyError> {
    let mut builder = Message::builder()
        .from(parts.from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for rcpt in &parts.to {
        builder = builder.to(rcpt.clone());
    }
    builder
        .body(body.to_string())
        .map_err(|e| NotifyError::BadMessage(e.to_string()))
}

fn transport(cfg: &SmtpConfig, roots: Vec<Certificate>) -> Result<SmtpTransport, NotifyError> {
    let server = cfg.server.trim().to_string();
    let tls_error = |detail: String| NotifyError::Tls {
        server: server.clone(),
        port: cfg.port,
        detail,
    };
    let params = || -> Result<TlsParameters, NotifyError> {
        let mut b = TlsParameters::builder(server.clone())
            .dangerous_accept_invalid_certs(!cfg.tls_verify)
            .dangerous_accept_invalid_hostnames(!cfg.tls_verify);
        for cert in roots.iter().cloned() {
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| tls_error(e.to_string()))
    };
    let tls = match cfg.tls {
        TlsMode::None => Tls::None,
        TlsMode::StartTls => Tls::Required(params()?),
        TlsMode::Tls => Tls::Wrapper(params()?),
    };
    let mut builder = SmtpTransport::builder_dangerous(server.clone())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(builder.build())
}

/// The first `std::io::Error` in an error's source chain.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// Maps lettre's error to ours.
fn classify(cfg: &SmtpConfig, err: lettre::transport::smtp::Error) -> NotifyError {
    let detail = err.to_string();
    let server = cfg.server.trim().to_string();
    let port = cfg.port;
    // A socket read timeout surfaces as `WouldBlock` (EAGAIN) on Linux, `TimedOut` elsewhere.
    let timed_out = err.is_timeout()
        || io_cause(&err).is_some_and(|io| io.kind() == std::io::ErrorKind::WouldBlock);
    if timed_out {
        return NotifyError::Timeout {
            server,
            port,
            secs: cfg.timeout.as_secs().max(1),
            detail,
        };
    }
    // A failed handshake (STARTTLS or implicit TLS) surfaces as a network error whose cause is
    // a rustls error, e.g. "invalid peer certificate: UnknownIssuer".
    let tls_cause = io_cause(&err)
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if err.is_tls() || tls_cause {
        return NotifyError::Tls {
            server,
            port,
            detail,
        };
    }
    if let Some(code) = err.status() {
        let n: u16 = code.into();
        return match n {
            530 | 534 | 535 | 538 => NotifyError::Auth(detail),
            400..=499 => NotifyError::Transient(detail),
            _ => NotifyError::Rejected(detail),
        };
    }
    if let Some(io) = io_cause(&err) {
        use std::io::ErrorKind as K;
        if matches!(
            io.kind(),
            K::ConnectionRefused
                | K::AddrNotAvailable
                | K::NotFound
                | K::HostUnreachable
                | K::NetworkUnreachable
        ) || detail.contains("failed to lookup address")
        {
            return NotifyError::Connect {
                server,
                port,
                detail: io.to_string(),
            };
        }
    }
    if err.is_client() && detail.contains("authentication") {
        return NotifyError::Auth(detail);
    }
    if cfg.tls == TlsMode::StartTls && detail.contains("STARTTLS") {
        return NotifyError::Tls {
            server,
            port,
            detail,
        };
    }
    NotifyError::Smtp(detail)
}

/// Sends one plain-text message to every recipient and returns the server's answer to it.
///
/// Blocks the calling thread for the SMTP session, but never longer than
/// [`SmtpConfig::deadline`] (call it from a dirty IO scheduler); see the module's deadline
/// contract for what happens to a session that passes it.
///
/// # Errors
/// Config errors as [`validate`] (nothing sent), or the delivery error, named by
/// [`NotifyError::reason`]; which reasons are worth another try is the Erlang side's decision
/// (`emqx_guard_channel_email:retryable/1`). A session that passes the deadline is
/// [`NotifyError::Timeout`].
///
/// ```
/// # use std::time::Duration;
/// # use guard_core::notify::{SmtpConfig, TlsMode};
/// #
/// # let cfg = SmtpConfig {
/// #     server: "127.0.0.1".into(), // nothing listens on port 1
/// #     port: 1,
/// #     tls: TlsMode::None,
/// #     tls_verify: true,
/// #     ca_file: None,
/// #     username: None,
/// #     password: None,
/// #     from: "EMQX <emqx@example.com>".into(),
/// #     to: vec!["ops@example.com".into()],
/// #     timeout: Duration::from_secs(5),
/// #     deadline: Duration::from_secs(10),
/// # };
/// match guard_core::notify::send_mail(&cfg, "backup OK", "…") {
///     Ok(sent) => println!("the server answered {sent}"), // e.g. 250 2.0.0 Ok: queued
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// ```
pub fn send_mail(cfg: &SmtpConfig, subject: &str, body: &str) -> Result<Sent, NotifyError> {
    let parts = checked_parts(cfg)?;
    let message = build_from_parts(&parts, subject, body)?;
    let mailer = transport(cfg, parts.roots)?;
    // Capacity 1: the session thread never blocks on sending its result, even when nobody
    // waits for it any more.
    let (tx, rx) = mpsc::sync_channel(1);
    let session_cfg = cfg.clone();
    thread::Builder::new()
        .name("emqx_guard_smtp".into())
        .spawn(move || {
            let result = match mailer.send(&message) {
                Ok(resp) => Ok(Sent {
                    code: resp.code().into(),
                    message: resp.message().collect::<Vec<_>>().join(" "),
                }),
                Err(e) => Err(classify(&session_cfg, e)),
            };
            let _ = tx.send(result);
        })
        .map_err(|e| NotifyError::Smtp(format!("cannot start the SMTP session: {e}")))?;
    match rx.recv_timeout(cfg.deadline) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(NotifyError::Timeout {
            server: cfg.server.trim().to_string(),
            port: cfg.port,
            secs: cfg.deadline.as_secs().max(1),
            detail: "the session passed its overall deadline".into(),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(NotifyError::Smtp(
            "the SMTP session ended without a result".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    fn cfg(port: u16) -> SmtpConfig {
        SmtpConfig {
            server: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            tls_verify: true,
            ca_file: None,
            username: None,
            password: None,
            from: "emqx_guard <guard@example.com>".into(),
            to: vec![
                "ops@example.com".into(),
                "Second <second@example.org>".into(),
            ],
            timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }

    #[test]
    fn tls_mode_spellings() {
        assert_eq!(TlsMode::parse("none").unwrap(), TlsMode::None);
        assert_eq!(TlsMode::parse("starttls").unwrap(), TlsMode::StartTls);
        assert_eq!(TlsMode::parse("tls").unwrap(), TlsMode::Tls);
        let err = TlsMode::parse("ssl").unwrap_err();
        assert_eq!(err.reason(), "bad_config");
        assert!(err.to_string().contains("\"ssl\""), "{err}");
    }

    #[test]
    fn validate_refuses_incomplete_settings() {
        let mut c = cfg(25);
        c.server = "  ".into();
        assert_eq!(validate(&c).unwrap_err().reason(), "bad_config");

        let mut c = cfg(0);
        c.port = 0;
        assert_eq!(validate(&c).unwrap_err().reason(), "bad_config");

        let mut c = cfg(25);
        c.to.clear();
        let e = validate(&c).unwrap_err();
        assert_eq!(e.to_string(), "no recipient (to) is set");

        let mut c = cfg(25);
        c.to.push("not an address".into());
        let e = validate(&c).unwrap_err();
        assert_eq!(e.reason(), "bad_address");
        assert!(e.to_string().contains("not an address"), "{e}");

        let mut c = cfg(25);
        c.from = "nobody".into();
        assert_eq!(validate(&c).unwrap_err().reason(), "bad_address");

        let mut c = cfg(25);
        c.username = Some("ops".into());
        assert_eq!(
            validate(&c).unwrap_err().to_string(),
            "a user is set but no password"
        );

        let mut c = cfg(25);
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(validate(&c).unwrap_err().reason(), "ca_file");

        assert!(validate(&cfg(25)).is_ok());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let mut c = cfg(25);
        c.username = Some("ops".into());
        c.password = Some("s3cr3t-pw".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("******"), "{shown}");
    }

    #[test]
    fn message_has_all_recipients_subject_and_utf8_body() {
        let subject = "[emqx_guard] backup OK on emqx@node1: a.tar.gz (1.5 MiB)";
        let body = "Node: emqx@node1\nZone: Europe/Zürich\n";
        let msg = build_message(&cfg(25), subject, body).unwrap();
        let env = msg.envelope();
        let rcpts: Vec<String> = env.to().iter().map(ToString::to_string).collect();
        assert_eq!(rcpts, vec!["ops@example.com", "second@example.org"]);
        assert_eq!(
            env.from().map(ToString::to_string).as_deref(),
            Some("guard@example.com")
        );
        let wire = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            wire.contains("Subject: [emqx_guard] backup OK on emqx@node1"),
            "{wire}"
        );
        assert!(
            wire.contains("Content-Type: text/plain; charset=utf-8"),
            "{wire}"
        );
        assert!(wire.contains("Date: "), "{wire}");
    }

    #[test]
    fn refused_connection_is_a_retryable_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = send_mail(&cfg(port), "s", "b").unwrap_err();
        assert_eq!(e.reason(), "connect", "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    /// A scripted server on 127.0.0.1: answers each command with the next canned line and
    /// records every line the client sent.
    fn scripted_server(data_reply: &'static str) -> (u16, thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w: TcpStream = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut seen = Vec::new();
            w.write_all(b"220 test ESMTP\r\n").unwrap();
            let mut in_data = false;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                let l = line.trim_end().to_string();
                line.clear();
                seen.push(l.clone());
                if in_data {
                    if l == "." {
                        in_data = false;
                        w.write_all(data_reply.as_bytes()).unwrap();
                    }
                    continue;
                }
                let verb = l.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go ahead\r\n"
                    }
                    "QUIT" => {
                        w.write_all(b"221 bye\r\n").unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                w.write_all(reply).unwrap();
            }
            seen
        });
        (port, h)
    }

    #[test]
    fn sends_envelope_for_every_recipient_and_returns_the_answer() {
        let (port, h) = scripted_server("250 2.0.0 queued as ABC123\r\n");
        let sent = send_mail(&cfg(port), "hello", "line one\nline two").unwrap();
        assert_eq!(sent.to_string(), "250 2.0.0 queued as ABC123");
        let seen = h.join().unwrap();
        assert!(
            seen.contains(&"MAIL FROM:<guard@example.com>".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"RCPT TO:<ops@example.com>".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"RCPT TO:<second@example.org>".to_string()),
            "{seen:?}"
        );
        assert!(seen.contains(&"Subject: hello".to_string()), "{seen:?}");
        assert!(seen.contains(&"line two".to_string()), "{seen:?}");
    }

    #[test]
    fn deferral_is_transient_and_refusal_is_permanent() {
        let (port, h) = scripted_server("451 4.3.0 try again later\r\n");
        let e = send_mail(&cfg(port), "s", "b").unwrap_err();
        assert_eq!(e.reason(), "transient", "{e}");
        assert!(e.to_string().contains("try again later"), "{e}");
        drop(h);

        let (port, h) = scripted_server("554 5.7.1 no thanks\r\n");
        let e = send_mail(&cfg(port), "s", "b").unwrap_err();
        assert_eq!(e.reason(), "rejected", "{e}");
        drop(h);
    }

    #[test]
    fn starttls_required_but_not_offered_is_a_tls_error() {
        let (port, h) = scripted_server("250 ok\r\n");
        let mut c = cfg(port);
        c.tls = TlsMode::StartTls;
        let e = send_mail(&c, "s", "b").unwrap_err();
        assert_eq!(e.reason(), "tls", "{e}");
        drop(h);
    }

    #[test]
    fn silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Accept and never write a greeting.
        let h = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut sink = String::new();
            let _ = r.read_line(&mut sink);
        });
        let mut c = cfg(port);
        c.timeout = Duration::from_millis(300);
        let e = send_mail(&c, "s", "b").unwrap_err();
        assert_eq!(e.reason(), "timeout", "{e}");
        drop(h);
    }

    #[test]
    fn trickling_server_hits_the_overall_deadline() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let server_stop = Arc::clone(&stop);
        // A greeting line that never ends: one byte every 100 ms, each well within the
        // per-operation timeout.
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.write_all(b"220-");
            while !server_stop.load(Ordering::Relaxed) {
                if s.write_all(b"x").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let mut c = cfg(port);
        c.timeout = Duration::from_millis(500);
        c.deadline = Duration::from_secs(2);
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(send_mail(&c, "s", "b"));
        });
        // Safety net only: the call must come back at all; 30 s is far beyond the deadline.
        let result = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("send_mail did not return");
        stop.store(true, Ordering::Relaxed);
        let e = result.unwrap_err();
        assert_eq!(e.reason(), "timeout", "{e}");
        server.join().unwrap();
    }

    #[test]
    fn zero_deadline_is_a_config_error() {
        let mut c = cfg(25);
        c.deadline = Duration::ZERO;
        assert_eq!(validate(&c).unwrap_err().reason(), "bad_config");
    }
}
