//! What every NIF shares: the error half of a reply, and the few values rustler cannot encode
//! the way the contract (`emqx_guard_nif`) states them.
//!
//! A NIF returns `Result<T, Failure>`: rustler encodes `Ok(v)` as `{ok, V}` and `Err(f)` as
//! `{error, F}`, and [`Failure`] is the tuple `{Reason, Detail}`. The values themselves are
//! Rust types whose derives (`NifMap`, `NifTuple`, `NifTaggedEnum`) say their Erlang shape; they
//! live next to the NIFs that return them.

use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use guard_core::worker::Panicked;
use rustler::{Atom, Encoder, Env, NewBinary, NifTuple, Term};

/// An error that crosses into Erlang as `{error, {Reason, Detail}}`: every error of
/// `guard_core` has a stable `reason()` and a one-line `Display`.
pub(crate) trait NifError: Display {
    /// The stable reason atom's name.
    fn reason(&self) -> &'static str;
}

/// Each core error's own `reason()` is its Erlang reason.
macro_rules! core_errors {
    ($($error:ty),* $(,)?) => {
        $(impl NifError for $error {
            fn reason(&self) -> &'static str {
                <$error>::reason(self)
            }
        })*
    };
}

core_errors!(
    guard_core::schedule::ScheduleError,
    guard_core::retention::RetentionError,
    guard_core::retention::PolicyError,
    guard_core::verify::VerifyError,
    guard_core::disk::DiskError,
    guard_core::reading::ReadError,
    guard_core::worker::SpawnError,
    guard_core::worker::Panicked,
    guard_core::offsite::OffsiteError,
    guard_core::notify::NotifyError,
);

/// An error found here, before `guard_core` is called: an argument outside the domain that the
/// core's Rust signature can express (a negative count, a binary that is not UTF-8).
pub(crate) struct ArgError {
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl NifError for ArgError {
    fn reason(&self) -> &'static str {
        self.reason
    }
}

/// `{Reason, Detail}`: the reason atom and one line a person understands.
#[derive(NifTuple)]
#[rustler(encode)]
pub(crate) struct Failure {
    pub(crate) reason: AtomName,
    pub(crate) detail: String,
}

impl Failure {
    /// The failure `err` stands for, its text forced onto one line.
    pub(crate) fn of(err: &dyn NifError) -> Failure {
        Failure {
            reason: AtomName(err.reason().to_string()),
            detail: one_line(&err.to_string()),
        }
    }
}

impl<E: NifError> From<E> for Failure {
    fn from(err: E) -> Failure {
        Failure::of(&err)
    }
}

/// What a NIF answers: `{ok, T}` or `{error, {Reason, Detail}}` (rustler encodes `Result`).
pub(crate) type Reply<T> = Result<T, Failure>;

/// The reply of a job whose work returned `outcome`, its value made into the term type `U` by
/// `term`; a panic of the work is `{error, {panicked, Detail}}`.
pub(crate) fn job_reply<T, E: NifError, U>(
    outcome: Result<Result<T, E>, Panicked>,
    term: impl FnOnce(T) -> U,
) -> Reply<U> {
    match outcome {
        Ok(Ok(value)) => Ok(term(value)),
        Ok(Err(err)) => Err(err.into()),
        Err(panicked) => Err(panicked.into()),
    }
}

/// `text` with any line breaks (and the white space around them) turned into one space.
pub(crate) fn one_line(text: &str) -> String {
    if text.contains(['\n', '\r']) {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text.to_string()
    }
}

/// An atom whose name is known only at run time: a stable reason or check name of
/// `guard_core`. Encoded by hand: rustler's derives make atoms only from Rust identifiers
/// (field and variant names), and these names are the core's own strings, kept in one place
/// there. A name the BEAM refuses (longer than 255 characters; none is) becomes `error`.
pub(crate) struct AtomName(pub(crate) String);

impl Encoder for AtomName {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match Atom::from_str(env, &self.0) {
            Ok(atom) => atom.encode(env),
            Err(_) => rustler::types::atom::error().encode(env),
        }
    }
}

/// A path as a binary holding its bytes. Encoded by hand: rustler encodes a `Path` through
/// `to_str`, which makes a path that is not UTF-8 `nil`, and the contract passes paths byte for
/// byte.
pub(crate) struct PathBytes(pub(crate) PathBuf);

impl Encoder for PathBytes {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        NewBinary::from_slice(env, self.0.as_os_str().as_bytes()).into()
    }
}
