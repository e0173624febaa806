//! `send_mail(Config, Subject, Body)`: the backup e-mail, sent by [`guard_core::notify`] on a
//! dirty IO scheduler, within the session's deadline (see `guard_core::notify`'s deadline
//! contract).
//!
//! `Config` (its keys and defaults: the doc of `emqx_guard_nif:send_mail/3`) is decoded by hand,
//! not by a derive: optional keys take defaults, `undefined` means unset, and a missing or
//! mistyped key must be a `bad_config` naming the key (the settings come from an operator, who
//! should read what is wrong), not a `badarg`.

use std::path::PathBuf;
use std::time::Duration;

use guard_core::notify::{self, NotifyError, SmtpConfig, TlsMode};
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::terms::Reply;

/// Default bound on connecting and on each read or write.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Default bound on the whole SMTP session.
const DEFAULT_DEADLINE_MS: u64 = 120_000;

fn bad(detail: String) -> NotifyError {
    NotifyError::BadConfig(detail)
}

/// The value under atom key `key`, or `None` when absent or `undefined`.
fn get<'a>(env: Env<'a>, map: Term<'a>, key: &str) -> Result<Option<Term<'a>>, NotifyError> {
    let k = Atom::from_str(env, key).map_err(|_| bad(format!("bad key {key}")))?;
    match map.map_get(k.encode(env)) {
        Ok(v) if v.is_atom() && v.atom_to_string().is_ok_and(|s| s == "undefined") => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(_) => Ok(None),
    }
}

fn text(term: Term, key: &str) -> Result<String, NotifyError> {
    let bin: Binary = term
        .decode()
        .map_err(|_| bad(format!("{key} must be a binary")))?;
    String::from_utf8(bin.as_slice().to_vec()).map_err(|_| bad(format!("{key} is not valid UTF-8")))
}

fn opt_text<'a>(env: Env<'a>, map: Term<'a>, key: &str) -> Result<Option<String>, NotifyError> {
    get(env, map, key)?.map(|t| text(t, key)).transpose()
}

fn required_text<'a>(env: Env<'a>, map: Term<'a>, key: &str) -> Result<String, NotifyError> {
    opt_text(env, map, key)?.ok_or_else(|| bad(format!("{key} is not set")))
}

/// Decodes the settings map into the core's config.
fn config<'a>(env: Env<'a>, map: Term<'a>) -> Result<SmtpConfig, NotifyError> {
    let server = required_text(env, map, "server")?;
    let port = match get(env, map, "port")? {
        None => return Err(bad("port is not set".into())),
        Some(t) => t
            .decode::<i64>()
            .ok()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port must be an integer from 1 to 65535".into()))?,
    };
    let tls = match get(env, map, "tls")? {
        None => return Err(bad("tls is not set".into())),
        Some(t) => {
            let name = t
                .atom_to_string()
                .or_else(|_| text(t, "tls"))
                .map_err(|_| bad("tls must be none, starttls or tls".into()))?;
            TlsMode::parse(&name)?
        }
    };
    let tls_verify = match get(env, map, "tls_verify")? {
        None => true,
        Some(t) => t
            .decode::<bool>()
            .map_err(|_| bad("tls_verify must be true or false".into()))?,
    };
    let ca_file = opt_text(env, map, "ca_file")?
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let username = opt_text(env, map, "username")?.filter(|u| !u.is_empty());
    let password = opt_text(env, map, "password")?.filter(|p| !p.is_empty());
    let from = required_text(env, map, "from")?;
    let to = match get(env, map, "to")? {
        None => Vec::new(),
        Some(t) => {
            let items: Vec<Term> = t
                .decode()
                .map_err(|_| bad("to must be a list of binaries".into()))?;
            items
                .into_iter()
                .map(|i| text(i, "to"))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let timeout_ms = match get(env, map, "timeout_ms")? {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => t
            .decode::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| bad("timeout_ms must be a positive integer".into()))?,
    };
    let deadline_ms = match get(env, map, "deadline_ms")? {
        None => DEFAULT_DEADLINE_MS,
        Some(t) => t
            .decode::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| bad("deadline_ms must be a positive integer".into()))?,
    };
    Ok(SmtpConfig {
        server,
        port,
        tls,
        tls_verify,
        ca_file,
        username,
        password,
        from,
        to,
        timeout: Duration::from_millis(timeout_ms),
        deadline: Duration::from_millis(deadline_ms),
    })
}

#[rustler::nif(schedule = "DirtyIo")]
fn send_mail<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    subject: Binary,
    body: Binary,
) -> NifResult<Reply<String>> {
    if !cfg.is_map() {
        return Err(rustler::Error::BadArg);
    }
    let utf8 = |bin: &Binary, what: &str| {
        std::str::from_utf8(bin.as_slice())
            .map(str::to_string)
            .map_err(|_| NotifyError::BadMessage(format!("{what} is not UTF-8")))
    };
    let send = || {
        let cfg = config(env, cfg)?;
        let subject = utf8(&subject, "subject")?;
        let body = utf8(&body, "body")?;
        Ok(notify::send_mail(&cfg, &subject, &body)?.to_string())
    };
    Ok(send())
}
