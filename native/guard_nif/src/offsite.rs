//! Off-site copies ([`guard_core::offsite`]) as background jobs: every NIF here checks its
//! arguments, starts a job on a low-priority thread of its own ([`crate::jobs`]) and returns
//! `{ok, Job}`; the job ends with `{emqx_guard_job, Job, Result}` to the caller. No S3 request
//! ever runs on a normal or dirty scheduler.
//!
//! `Config` is a map with atom keys (strings are binaries; `undefined` or a missing key takes the
//! default):
//!
//! | key | type | default |
//! |---|---|---|
//! | `bucket` | binary | required |
//! | `prefix` | binary, no leading/trailing `/` | `<<>>` |
//! | `region` | binary | `<<"us-east-1">>` |
//! | `endpoint` | binary `http(s)://host[:port]` | AWS S3 |
//! | `access_key`, `secret_key` | binary | required |
//! | `path_style`, `tls_verify` | boolean or `<<"on">>`/`<<"off">>` | `false`, `true` |
//! | `ca_file` | binary path | none |
//! | `recipient` | binary `age1…` | none (no encryption) |
//! | `part_size` | integer, 5 MiB to 5 GiB | 16 MiB |
//! | `connect_timeout_ms`, `timeout_ms` | positive integer | 10000, 120000 |
//! | `max_retries` | non-negative integer | 3 |
//!
//! A wrong value is `{error, {bad_config, Detail}}` at once (the secret key never appears in any
//! Detail); a non-map is `badarg`.

use std::path::PathBuf;
use std::time::Duration;

use guard_core::offsite::{
    self, Fetched, OffsiteConfig, OffsiteError, RemoteBackup, RemotePruneReport, Secret, Uploaded,
};
use guard_core::reading::ReadControl;
use guard_core::worker::Panicked;
use rustler::env::OwnedEnv;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::background::decode_opts;
use crate::{error, error_term, ok, path_arg, NifError};

impl NifError for OffsiteError {
    fn reason(&self) -> &'static str {
        OffsiteError::reason(self)
    }
}

mod atoms {
    rustler::atoms! {
        undefined,
        name,
        export_name,
        key,
        path,
        size,
        mtime,
        encrypted,
        source_size,
        sha256,
        parts,
        kept,
        deleted,
        failed,
        object_size,
        verified,
        entries,
        bytes,
        version,
        edition,
        error,
        stored_sha256,
        reused,
        checked_by,
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

macro_rules! try_arg {
    ($env:expr, $e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(err) => return error($env, &err),
        }
    };
}

/// `{ok, encode(value)}`, `{error, {Reason, Detail}}`, or a panic as `{error, {panicked, _}}`.
fn deliver<'a, T>(
    env: Env<'a>,
    outcome: Result<Result<T, OffsiteError>, Panicked>,
    encode: impl FnOnce(Env<'a>, &T) -> NifResult<Term<'a>>,
) -> Term<'a> {
    match outcome {
        Ok(Ok(value)) => match encode(env, &value) {
            Ok(term) => ok(env, term),
            Err(_) => error_term(env, &Panicked("cannot encode the result".to_string())),
        },
        Ok(Err(e)) => error_term(env, &e),
        Err(p) => error_term(env, &p),
    }
}

fn uploaded_map<'a>(env: Env<'a>, u: &Uploaded) -> NifResult<Term<'a>> {
    Term::map_from_arrays(
        env,
        &[
            atoms::name(),
            atoms::key(),
            atoms::size(),
            atoms::source_size(),
            atoms::sha256(),
            atoms::encrypted(),
            atoms::parts(),
            atoms::stored_sha256(),
            atoms::reused(),
        ],
        &[
            u.name.encode(env),
            u.key.encode(env),
            u.size.encode(env),
            u.source_size.encode(env),
            u.source_sha256.encode(env),
            u.encrypted.encode(env),
            u.parts.encode(env),
            u.stored_sha256.encode(env),
            u.reused.encode(env),
        ],
    )
}

fn remote_map<'a>(env: Env<'a>, b: &RemoteBackup) -> NifResult<Term<'a>> {
    Term::map_from_arrays(
        env,
        &[
            atoms::name(),
            atoms::export_name(),
            atoms::key(),
            atoms::size(),
            atoms::mtime(),
            atoms::encrypted(),
        ],
        &[
            b.name.encode(env),
            b.export_name.encode(env),
            b.key.encode(env),
            b.size.encode(env),
            b.last_modified_ms.encode(env),
            b.encrypted.encode(env),
        ],
    )
}

fn remote_list<'a>(env: Env<'a>, list: &[RemoteBackup]) -> NifResult<Term<'a>> {
    Ok(list
        .iter()
        .map(|b| remote_map(env, b))
        .collect::<NifResult<Vec<_>>>()?
        .encode(env))
}

fn prune_map<'a>(env: Env<'a>, r: &RemotePruneReport) -> NifResult<Term<'a>> {
    let failed = r
        .failed
        .iter()
        .map(|(b, why)| remote_map(env, b)?.map_put(atoms::error(), crate::one_line(why).as_ref()))
        .collect::<NifResult<Vec<_>>>()?;
    Term::map_from_arrays(
        env,
        &[atoms::kept(), atoms::deleted(), atoms::failed()],
        &[
            remote_list(env, &r.kept)?,
            remote_list(env, &r.deleted)?,
            failed.encode(env),
        ],
    )
}

fn fetched_map<'a>(env: Env<'a>, f: &Fetched) -> NifResult<Term<'a>> {
    let checked_by = f
        .checked_by
        .iter()
        .map(|c| Atom::from_str(env, c.as_str()))
        .collect::<NifResult<Vec<Atom>>>()?;
    let v = &f.verified;
    let verified = Term::map_from_arrays(
        env,
        &[
            atoms::entries(),
            atoms::bytes(),
            atoms::version(),
            atoms::edition(),
            atoms::sha256(),
        ],
        &[
            v.entries.encode(env),
            v.bytes.encode(env),
            v.version.encode(env),
            v.edition.encode(env),
            v.sha256.encode(env),
        ],
    )?;
    Term::map_from_arrays(
        env,
        &[
            atoms::name(),
            atoms::path(),
            atoms::size(),
            atoms::object_size(),
            atoms::encrypted(),
            atoms::verified(),
            atoms::checked_by(),
        ],
        &[
            f.name.encode(env),
            crate::path_term(env, &f.path),
            f.size.encode(env),
            f.object_size.encode(env),
            f.encrypted.encode(env),
            verified,
            checked_by.encode(env),
        ],
    )
}

/// `offsite_upload_async(Config, Path, Opts)` -> `{ok, Job}` (`bad_config`, `bad_name`,
/// `bad_opts`, `busy`, `thread` at once); later `{emqx_guard_job, Job, {ok, #{name, key, size,
/// source_size, sha256, stored_sha256, encrypted, parts, reused}} | {error, {Reason,
/// Detail}}}`. The object is named after Path's file name, which must be an export name;
/// `reused` is true when the object already held this export and nothing was sent.
#[rustler::nif]
fn offsite_upload_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    path: Binary,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let cfg = try_arg!(env, decode_config(env, cfg));
    let limit = try_arg!(env, decode_opts(opts));
    let path = path_arg(&path).to_path_buf();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| guard_core::retention::is_export_name(n))
        .map(str::to_string);
    let Some(name) = name else {
        let err = OffsiteError::BadName(path.to_string_lossy().into_owned());
        return error(env, &err);
    };
    crate::jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            offsite::upload(&cfg, &path, &name, &mut control)
        },
        Box::new(|env, outcome| deliver(env, outcome, uploaded_map)),
    )
}

/// `offsite_list_async(Config, Opts)` -> `{ok, Job}`; later `{emqx_guard_job, Job, {ok,
/// [#{name, export_name, key, size, mtime, encrypted}]} | {error, {Reason, Detail}}}`, newest
/// first.
#[rustler::nif]
fn offsite_list_async<'a>(env: Env<'a>, cfg: Term<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = try_arg!(env, decode_config(env, cfg));
    let _ = try_arg!(env, decode_opts(opts));
    crate::jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| offsite::list(&cfg, cancel),
        Box::new(
            |env, outcome: Result<Result<Vec<RemoteBackup>, OffsiteError>, Panicked>| {
                deliver(env, outcome, |env, list| remote_list(env, list))
            },
        ),
    )
}

/// `offsite_prune_async(Config, Keep, DryRun, Opts)` -> `{ok, Job}` (`bad_keep` at once for
/// Keep < 1); later `{emqx_guard_job, Job, {ok, #{kept := [Remote], deleted := [Remote], failed
/// := [Remote#{error := binary()}]}} | {error, {Reason, Detail}}}`.
#[rustler::nif]
fn offsite_prune_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    keep: i64,
    dry_run: bool,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let cfg = try_arg!(env, decode_config(env, cfg));
    let _ = try_arg!(env, decode_opts(opts));
    let keep = match usize::try_from(keep).ok().filter(|k| *k > 0) {
        Some(k) => k,
        None => return error(env, &OffsiteError::BadKeep),
    };
    crate::jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| offsite::prune(&cfg, keep, dry_run, cancel),
        Box::new(|env, outcome| deliver(env, outcome, prune_map)),
    )
}

/// `offsite_fetch_async(Config, Name, IdentityPath | undefined, DestDir, Opts)` -> `{ok, Job}`
/// (`bad_name` at once); later `{emqx_guard_job, Job, {ok, #{name, path, size, object_size,
/// encrypted, verified := #{entries, bytes, version, edition, sha256}, checked_by := [Check]}}
/// | {error, {Reason, Detail}}}`, Check one of `stored_sha256`, `age`, `export_sha256`,
/// `verify` in the order they were made; a refusal's Detail names its check.
#[rustler::nif]
fn offsite_fetch_async<'a>(
    env: Env<'a>,
    cfg: Term<'a>,
    name: Binary,
    identity: Term<'a>,
    dest_dir: Binary,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let cfg = try_arg!(env, decode_config(env, cfg));
    let limit = try_arg!(env, decode_opts(opts));
    let name = match std::str::from_utf8(name.as_slice()) {
        Ok(n) if offsite::remote_export_name(n).is_some() => n.to_string(),
        _ => {
            let err = OffsiteError::BadName(String::from_utf8_lossy(name.as_slice()).into_owned());
            return error(env, &err);
        }
    };
    let identity = if identity == atoms::undefined().encode(env) {
        None
    } else {
        let bin: Binary = identity.decode()?;
        Some(path_arg(&bin).to_path_buf())
    };
    let dest = path_arg(&dest_dir).to_path_buf();
    crate::jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            offsite::fetch(&cfg, &name, identity.as_deref(), &dest, &mut control)
        },
        Box::new(|env, outcome| deliver(env, outcome, fetched_map)),
    )
}
