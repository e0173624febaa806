//! Helpers shared by the integration tests: `mod common;` in a test file, then
//! `common::write_export`, `common::Rng`.

mod export;
mod rng;

#[allow(unused_imports)]
pub use export::write_export;
#[allow(unused_imports)]
pub use rng::Rng;
