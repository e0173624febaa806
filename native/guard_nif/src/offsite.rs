//! Off-site copies ([`guard_core::offsite`]) as background jobs: every NIF here checks its
//! arguments, starts a job on a low-priority thread of its own ([`crate::jobs`]) and returns
//! `{ok, Job}`; the job ends with `{emqx_guard_job, Job, Result}` to the caller. No S3 request
//! ever runs on a normal or dirty scheduler.
//!
//! `Config` (its keys, defaults and checks: the type `offsite_config()` of `emqx_guard_nif`) is
//! decoded by hand, not by a derive: every key but three is optional, `undefined` means the
//! default, booleans may be written `<<"on">>`/`<<"off">>`, and each wrong value must be a
//! `bad_config` naming its key (the secret key never in it) rather than a `badarg`.

use std::path::PathBuf;
use std::time::Duration;

use guard_core::offsite::{
    self, Check, Fetched, OffsiteConfig, OffsiteError, RemoteBackup, RemotePruneReport, Secret,
    Uploaded,
};
use guard_core::reading::ReadControl;
use guard_core::retention::Fate;
use guard_core::verify::Verified;
use rustler::env::OwnedEnv;
use rustler::{Atom, Binary, Encoder, Env, ErlOption, NifMap, NifResult, Term};

use crate::jobs::{self, decode_opts};
use crate::path_arg;
use crate::retention::{decode_rules, fate_fields};
use crate::terms::{job_reply, one_line, AtomName, PathBytes, Reply};

mod atoms {
    rustler::atoms! {
        undefined,
    }
}

fn bad(detail: String) -> OffsiteError {
    OffsiteError::BadConfig(detail)
}

/// The value under atom key `key`; `None` when absent or `undefined`.
fn get<'a>(env: Env<'a>, map: Term<'a>, key: &str) -> Result<Option<Term<'a>>, OffsiteError> {
    let k = Atom::from_str(env, key).map_err(|_| bad(format!("bad key {key}")))?;
    match map.map_get(k.encode(env)) {
        Ok(v) if v == atoms::undefined().encode(env) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(_) => Ok(None),
    }
}

fn text(term: Term, key: &str) -> Result<String, OffsiteError> {
    let bin: Binary = term
        .decode()
        .map_err(|_| bad(format!("{key} must be a binary")))?;
    String::from_utf8(bin.as_slice().to_vec()).map_err(|_| bad(format!("{key} is not valid UTF-8")))
}

fn opt_text<'a>(env: Env<'a>, map: Term<'a>, key: &str) -> Result<Option<String>, OffsiteError> {
    Ok(get(env, map, key)?
        .map(|t| text(t, key))
        .transpose()?
        .filter(|s| !s.is_empty()))
}

fn flag<'a>(env: Env<'a>, map: Term<'a>, key: &str, default: bool) -> Result<bool, OffsiteError> {
    let Some(t) = get(env, map, key)? else {
        return Ok(default);
    };
    if let Ok(b) = t.decode::<bool>() {
        return Ok(b);
    }
    match text(t, key).as_deref() {
        Ok("on" | "true") => Ok(true),
        Ok("off" | "false") => Ok(false),
        _ => Err(bad(format!("{key} must be true or false (or on/off)"))),
    }
}

fn number<'a>(
    env: Env<'a>,
    map: Term<'a>,
    key: &str,
    default: u64,
    min: u64,
) -> Result<u64, OffsiteError> {
    match get(env, map, key)? {
        None => Ok(default),
        Some(t) => t
            .decode::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| bad(format!("{key} must be an integer of at least {min}"))),
    }
}

/// Decodes and validates `Config` (see the module documentation).
fn config<'a>(env: Env<'a>, map: Term<'a>) -> Result<OffsiteConfig, OffsiteError> {
    let bucket = opt_text(env, map, "bucket")?.ok_or_else(|| bad("bucket is not set".into()))?;
    let access_key =
        opt_text(env, map, "access_key")?.ok_or_else(|| bad("access_key is not set".into()))?;
    let secret_key =
        opt_text(env, map, "secret_key")?.ok_or_else(|| bad("secret_key is not set".into()))?;
    let mut cfg = OffsiteConfig::new(&bucket, &access_key, Secret::new(secret_key));
    if let Some(prefix) = opt_text(env, map, "prefix")? {
        cfg.prefix = prefix;
    }
    if let Some(region) = opt_text(env, map, "region")? {
        cfg.region = region;
    }
    cfg.endpoint = opt_text(env, map, "endpoint")?;
    cfg.path_style = flag(env, map, "path_style", false)?;
    cfg.tls_verify = flag(env, map, "tls_verify", true)?;
    cfg.ca_file = opt_text(env, map, "ca_file")?.map(PathBuf::from);
    cfg.recipient = opt_text(env, map, "recipient")?;
    let part_size = number(env, map, "part_size", offsite::DEFAULT_PART_SIZE as u64, 1)?;
    cfg.part_size = usize::try_from(part_size).unwrap_or(usize::MAX);
    let concurrency = number(
        env,
        map,
        "concurrency",
        offsite::DEFAULT_CONCURRENCY as u64,
        1,
    )?;
    cfg.concurrency = usize::try_from(concurrency).unwrap_or(usize::MAX);
    cfg.connect_timeout = Duration::from_millis(number(
        env,
        map,
        "connect_timeout_ms",
        offsite::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
        1,
    )?);
    cfg.request_timeout = Duration::from_millis(number(
        env,
        map,
        "timeout_ms",
        offsite::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64,
        1,
    )?);
    let retries = number(
        env,
        map,
        "max_retries",
        offsite::DEFAULT_MAX_RETRIES as u64,
        0,
    )?;
    cfg.max_retries = usize::try_from(retries.min(100)).unwrap_or(100);
    cfg.validate()?;
    Ok(cfg)
}

/// `Config` or the `bad_config` error; a non-map is `badarg`.
fn decode_config<'a>(
    env: Env<'a>,
    map: Term<'a>,
) -> NifResult<Result<OffsiteConfig, OffsiteError>> {
    if !map.is_map() {
        return Err(rustler::Error::BadArg);
    }
    Ok(config(env, map))
}

/// `Ok(value)` of a decoded argument, or the NIF's `{error, {Reason, Detail}}` at once.
macro_rules! try_arg {
    ($decoded:expr) => {
        match $decoded {
            Ok(v) => v,
            Err(err) => return Ok(Err(err.into())),
        }
    };
}

/// What an upload stored, or found already stored (`offsite_uploaded()`).
#[derive(NifMap)]
#[rustler(encode)]
struct UploadedMap {
    name: String,
    key: String,
    size: u64,
    source_size: u64,
    sha256: String,
    stored_sha256: String,
    encrypted: bool,
    parts: usize,
    reused: bool,
}

impl From<Uploaded> for UploadedMap {
    fn from(u: Uploaded) -> Self {
        UploadedMap {
            name: u.name,
            key: u.key,
            size: u.size,
            source_size: u.source_size,
            sha256: u.source_sha256,
            stored_sha256: u.stored_sha256,
            encrypted: u.encrypted,
            parts: u.parts,
            reused: u.reused,
        }
    }
}

/// An off-site backup.
#[derive(NifMap)]
#[rustler(encode)]
struct RemoteMap {
    name: String,
    export_name: String,
    key: String,
    size: u64,
    mtime: i64,
    encrypted: bool,
}

impl From<RemoteBackup> for RemoteMap {
    fn from(b: RemoteBackup) -> Self {
        RemoteMap {
            name: b.name,
            export_name: b.export_name,
            key: b.key,
            size: b.size,
            mtime: b.last_modified_ms,
            encrypted: b.encrypted,
        }
    }
}

/// An off-site backup whose deletion failed, and why.
#[derive(NifMap)]
#[rustler(encode)]
struct RemoteErrorMap {
    name: String,
    export_name: String,
    key: String,
    size: u64,
    mtime: i64,
    encrypted: bool,
    error: String,
}

impl From<(RemoteBackup, String)> for RemoteErrorMap {
    fn from((b, why): (RemoteBackup, String)) -> Self {
        RemoteErrorMap {
            name: b.name,
            export_name: b.export_name,
            key: b.key,
            size: b.size,
            mtime: b.last_modified_ms,
            encrypted: b.encrypted,
            error: one_line(&why),
        }
    }
}

/// What remote retention kept, deleted and failed to delete.
#[derive(NifMap)]
#[rustler(encode)]
struct RemotePruneMap {
    kept: Vec<RemoteMap>,
    deleted: Vec<RemoteMap>,
    failed: Vec<RemoteErrorMap>,
    plan: Vec<RemoteFateMap>,
}

/// An off-site backup with what retention's decision made of its export (`offsite_fate()`).
#[derive(NifMap)]
#[rustler(encode)]
struct RemoteFateMap {
    name: String,
    export_name: String,
    key: String,
    size: u64,
    mtime: i64,
    encrypted: bool,
    keep: bool,
    why: String,
}

impl RemoteFateMap {
    fn new(b: RemoteBackup, fate: &Fate) -> Self {
        let (keep, why) = fate_fields(fate);
        RemoteFateMap {
            name: b.name,
            export_name: b.export_name,
            key: b.key,
            size: b.size,
            mtime: b.last_modified_ms,
            encrypted: b.encrypted,
            keep,
            why,
        }
    }
}

impl From<RemotePruneReport> for RemotePruneMap {
    fn from(r: RemotePruneReport) -> Self {
        RemotePruneMap {
            plan: r
                .plan
                .into_iter()
                .map(|(b, f)| RemoteFateMap::new(b, &f))
                .collect(),
            kept: r.kept.into_iter().map(RemoteMap::from).collect(),
            deleted: r.deleted.into_iter().map(RemoteMap::from).collect(),
            failed: r.failed.into_iter().map(RemoteErrorMap::from).collect(),
        }
    }
}

/// What verification found in a fetched export.
#[derive(NifMap)]
#[rustler(encode)]
struct VerifiedMap {
    entries: u64,
    bytes: u64,
    version: String,
    edition: String,
    sha256: String,
}

impl From<Verified> for VerifiedMap {
    fn from(v: Verified) -> Self {
        VerifiedMap {
            entries: v.entries,
            bytes: v.bytes,
            version: v.version,
            edition: v.edition,
            sha256: v.sha256,
        }
    }
}

/// A fetched backup and the checks it passed, in the order they were made (each the atom of
/// [`Check::as_str`], the core's one list of their names).
#[derive(NifMap)]
#[rustler(encode)]
struct FetchedMap {
    name: String,
    path: PathBytes,
    size: u64,
    object_size: u64,
    encrypted: bool,
    verified: VerifiedMap,
    checked_by: Vec<AtomName>,
}

impl From<Fetched> for FetchedMap {
    fn from(f: Fetched) -> Self {
        FetchedMap {
            name: f.name,
            path: PathBytes(f.path),
            size: f.size,
            object_size: f.object_size,
            encrypted: f.encrypted,
            verified: f.verified.into(),
            checked_by: f
                .checked_by
                .iter()
                .map(|c: &Check| AtomName(c.as_str().to_string()))
                .collect(),
        }
    }
}

#[rustler::nif]
fn offsite_upload_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    path: Binary,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let cfg = try_arg!(decode_config(env, cfg)?);
    let limit = try_arg!(decode_opts(opts)?);
    let path = path_arg(&path).to_path_buf();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            guard_core::retention::is_export_name(n) || offsite::companion_export(n).is_some()
        })
        .map(str::to_string);
    let Some(name) = name else {
        return Ok(Err(OffsiteError::BadName(
            path.to_string_lossy().into_owned(),
        )
        .into()));
    };
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            offsite::upload(&cfg, &path, &name, &mut control)
        },
        Box::new(|env, outcome| job_reply(outcome, UploadedMap::from).encode(env)),
    )
}

#[rustler::nif]
fn offsite_list_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let cfg = try_arg!(decode_config(env, cfg)?);
    let _ = try_arg!(decode_opts(opts)?);
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| offsite::list(&cfg, cancel),
        Box::new(|env, outcome| {
            let list = |list: Vec<RemoteBackup>| list.into_iter().map(RemoteMap::from).collect();
            let reply: Reply<Vec<RemoteMap>> = job_reply(outcome, list);
            reply.encode(env)
        }),
    )
}

#[rustler::nif]
fn offsite_prune_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    keep: Term<'a>,
    dry_run: bool,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let cfg = try_arg!(decode_config(env, cfg)?);
    let _ = try_arg!(decode_opts(opts)?);
    let rules = try_arg!(decode_rules(keep)?);
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| offsite::prune(&cfg, &rules, dry_run, cancel),
        Box::new(|env, outcome| job_reply(outcome, RemotePruneMap::from).encode(env)),
    )
}

#[rustler::nif]
fn offsite_fetch_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    name: Binary,
    identity: ErlOption<Binary>,
    dest_dir: Binary,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let cfg = try_arg!(decode_config(env, cfg)?);
    let limit = try_arg!(decode_opts(opts)?);
    let name = try_arg!(match std::str::from_utf8(name.as_slice()) {
        Ok(n) if offsite::fetchable_name(n).is_some() => Ok(n.to_string()),
        _ => Err(OffsiteError::BadName(
            String::from_utf8_lossy(name.as_slice()).into_owned()
        )),
    });
    let identity: Option<PathBuf> =
        Option::from(identity).map(|b: Binary| path_arg(&b).to_path_buf());
    let dest = path_arg(&dest_dir).to_path_buf();
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            offsite::fetch(&cfg, &name, identity.as_deref(), &dest, &mut control)
        },
        Box::new(|env, outcome| job_reply(outcome, FetchedMap::from).encode(env)),
    )
}
