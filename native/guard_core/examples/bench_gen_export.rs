//! Content generator for `make bench`'s `verify` figures (a benchmark helper: it asserts
//! nothing).
//!
//! Usage: `bench_gen_export PATH MIB [SEED]`. Writes exactly `MIB` MiB of text that looks like
//! what an EMQX export holds: Erlang-term lines of mnesia table dumps (retained messages,
//! sessions, rules, users) with random client ids, topics, numbers and timestamps. Unlike
//! `/dev/urandom` output, which gzip stores instead of deflating, it compresses by roughly 3 to
//! 5 times with `gzip -6`, so inflating it costs what inflating a real export costs. The same
//! seed gives the same bytes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// xorshift64*: fast, deterministic, good enough for test content.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const SITES: [&str; 8] = [
    "berlin", "munich", "hamburg", "lyon", "austin", "osaka", "pune", "santiago",
];
const KINDS: [&str; 6] = ["temp", "humidity", "pressure", "power", "door", "status"];
const RULES: [&str; 4] = [
    "SELECT payload.t AS t, clientid FROM \\\"sensors/+/+/temp\\\" WHERE payload.t > 30",
    "SELECT * FROM \\\"$events/client_connected\\\"",
    "SELECT payload, topic, qos FROM \\\"factory/#\\\"",
    "SELECT clientid, username, peerhost FROM \\\"$events/client_disconnected\\\"",
];

/// One line of a table dump; about 150 to 250 bytes.
fn line(rng: &mut Rng, seq: u64, ts: u64) -> String {
    let site = rng.pick(&SITES);
    let dev = rng.next() & 0xffff_ffff;
    let kind = rng.pick(&KINDS);
    match rng.below(10) {
        0..=5 => format!(
            "{{emqx_retainer_message,<<\"sensors/{site}/dev-{dev:08x}/{kind}\">>,#{{id => <<\"{:016x}\">>,qos => {},flags => #{{retain => true}},timestamp => {ts},payload => <<\"{{\\\"seq\\\":{seq},\\\"value\\\":{}.{:04},\\\"unit\\\":\\\"{kind}\\\",\\\"trace\\\":\\\"{:016x}{:016x}\\\"}}\">>}}}}.\n",
            rng.next(),
            rng.below(3),
            rng.below(100_000),
            rng.below(10_000),
            rng.next(),
            rng.next(),
        ),
        6..=8 => format!(
            "{{emqx_channel_registry,<<\"{site}-dev-{dev:08x}\">>,#{{node => 'emqx@10.0.{}.{}',conn_mod => emqx_connection,connected_at => {ts},expiry_interval => {},clean_start => {},session_id => <<\"{:016x}{:016x}\">>,peername => {{{{10,{},{},{}}},{}}},subscriptions => [<<\"cmd/{site}/dev-{dev:08x}/#\">>]}}}}.\n",
            rng.below(4),
            rng.below(250),
            rng.below(8) * 3600,
            rng.below(2) == 0,
            rng.next(),
            rng.next(),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            1024 + rng.below(64_000),
        ),
        _ => format!(
            "{{emqx_rule,<<\"rule_{:08x}\">>,#{{sql => <<\"{}\">>,enable => true,created_at => {ts},actions => [<<\"webhook:{site}_{kind}\">>]}}}}.\n",
            rng.next() & 0xffff_ffff,
            rng.pick(&RULES),
        ),
    }
}

fn write(path: &str, bytes: u64, seed: u64) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng(seed | 1);
    let mut written = 0u64;
    let mut ts = 1_767_225_600_000u64;
    let mut seq = 0u64;
    while written < bytes {
        seq += 1;
        ts += rng.below(5000);
        let text = line(&mut rng, seq, ts);
        let take = text.len().min((bytes - written) as usize);
        out.write_all(&text.as_bytes()[..take])?;
        written += take as u64;
    }
    out.flush()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, mib, seed) = match &args[..] {
        [path, mib] => (path, mib.parse::<u64>().ok(), Some(42)),
        [path, mib, seed] => (path, mib.parse::<u64>().ok(), seed.parse::<u64>().ok()),
        _ => (&String::new(), None, None),
    };
    let (Some(mib), Some(seed)) = (mib, seed) else {
        eprintln!("usage: bench_gen_export PATH MIB [SEED]");
        return ExitCode::from(2);
    };
    match write(path, mib * 1024 * 1024, seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_gen_export: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
