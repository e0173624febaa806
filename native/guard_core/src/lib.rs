//! Pure logic of emqx_guard, free of any Erlang types so that `cargo test` covers all of it.
//!
//! - [`schedule`]: the crontab(5) language, fire times in an IANA zone, plain-English descriptions.
//! - [`retention`]: which files in EMQX's backup directory are exports, and pruning them to the newest N.
//! - [`verify`]: a streaming, constant-memory check that an export tarball is complete and importable.
//! - [`notify`]: sending the backup report by e-mail (SMTP via lettre).
//! - [`reading`]: reads that can be cancelled, rate limited and counted; hashing a file.
//! - [`record`]: verification records (a verdict tied to the file's identity), trusted while it matches.
//! - [`offsite`]: off-site copies on S3-compatible object storage, encrypted with age.
//! - [`worker`]: background jobs on their own low-priority (`SCHED_IDLE`, nice 19) threads.
//! - [`disk`]: the free space of the file system holding a path (`statvfs`).
//!
//! What Erlang sees of them is the NIF's contract, stated once in `erlang/nif/emqx_guard_nif.erl`;
//! the docs here say what each Rust function does, with examples that run as doctests.

pub mod disk;
pub mod notify;
pub mod offsite;
pub mod reading;
pub mod record;
pub mod retention;
pub mod schedule;
mod text;
pub mod verify;
pub mod worker;
