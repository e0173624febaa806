//! Pure logic of emqx_guard, free of any Erlang types so that `cargo test` covers all of it.
//!
//! - [`schedule`]: the crontab(5) language, fire times in an IANA zone, plain-English descriptions.
//! - [`retention`]: which files in EMQX's backup directory are exports, and pruning them to the newest N.
//! - [`verify`]: a streaming, constant-memory check that an export tarball is complete and importable.
//! - [`notify`]: sending the backup report by e-mail (SMTP via lettre).

pub mod notify;
pub mod retention;
pub mod schedule;
pub mod verify;
