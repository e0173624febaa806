//! Retention policies: `retention_policy` (the operator's text parsed, on a normal scheduler:
//! it is a few string operations), the `Keep` argument of `prune_async` and
//! `offsite_prune_async` ([`decode_rules`]), and what the decision made of each backup
//! ([`fate_fields`]).

use std::collections::{BTreeSet, HashMap};

use guard_core::retention::{Calendar, Fate, Policy, PolicyError, Rules};
use rustler::types::map::MapIterator;
use rustler::{Binary, NifMap, NifResult, Term};

use crate::terms::{ArgError, Reply};

mod atoms {
    rustler::atoms! {
        policy,
        zone,
        pins,
        made,
        now,
    }
}

/// A policy parsed (`emqx_guard_nif_types:policy()`): its canonical text, each count, `within`
/// as text (`0h` when off).
#[derive(NifMap)]
#[rustler(encode)]
struct PolicyMap {
    text: String,
    last: u32,
    hourly: u32,
    daily: u32,
    weekly: u32,
    monthly: u32,
    yearly: u32,
    within: String,
}

impl From<Policy> for PolicyMap {
    fn from(p: Policy) -> Self {
        PolicyMap {
            text: p.to_string(),
            last: p.last,
            hourly: p.hourly,
            daily: p.daily,
            weekly: p.weekly,
            monthly: p.monthly,
            yearly: p.yearly,
            within: p.within.to_string(),
        }
    }
}

#[rustler::nif]
fn retention_policy(text: Binary) -> Reply<PolicyMap> {
    let text = crate::utf8(&text, "not_a_rule", "policy")?;
    Ok(Policy::parse(text)?.into())
}

/// What the decision made of a backup, as the plan entries carry it: `keep` and the one-line
/// `why` (the rule(s) that keep it, or `delete` and why).
pub(crate) fn fate_fields(fate: &Fate) -> (bool, String) {
    (fate.is_kept(), fate.to_string())
}

/// The `Keep` of the prune NIFs: a count N (`last=N` alone; below 1 is `bad_keep`), or the
/// rules map `#{policy := Text | N, zone := Zone, pins => [Name], made => #{Name => Ms}, now =>
/// Ms}` (`emqx_guard_nif_types:rules()`): the policy parsed as `retention_policy/1` does (its
/// errors as they are), the zone an IANA name or `local` (`bad_zone`), export names read in the
/// node's own zone (EMQX names them in its local time). Any other term raises `badarg`.
pub(crate) fn decode_rules(term: Term) -> NifResult<Result<Rules, ArgError>> {
    if let Ok(n) = term.decode::<i64>() {
        return Ok(count(n).map(Rules::keep_last));
    }
    if !term.is_map() {
        return Err(rustler::Error::BadArg);
    }
    let policy = match term.map_get(atoms::policy()) {
        Ok(p) => match p.decode::<i64>() {
            Ok(n) => count(n).map(Policy::keep_last),
            Err(_) => {
                let text = p.decode::<Binary>()?;
                crate::utf8(&text, "not_a_rule", "policy")
                    .and_then(|t| Policy::parse(t).map_err(policy_error))
            }
        },
        Err(_) => return Err(rustler::Error::BadArg),
    };
    let zone = term.map_get(atoms::zone())?.decode::<Binary>()?;
    let calendar = crate::utf8(&zone, "bad_zone", "time zone").and_then(|z| {
        Calendar::of_zone(z).map_err(|e| ArgError {
            reason: "bad_zone",
            detail: e.to_string(),
        })
    });
    let (policy, mut calendar) = match (policy, calendar) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    if let Ok(now) = term.map_get(atoms::now()) {
        calendar = calendar.now(now.decode::<i64>()?);
    }
    let mut rules = Rules::new(policy, calendar);
    if let Ok(pins) = term.map_get(atoms::pins()) {
        rules.pins = pins
            .decode::<Vec<Binary>>()?
            .iter()
            .map(|b| String::from_utf8_lossy(b.as_slice()).into_owned())
            .collect::<BTreeSet<String>>();
    }
    if let Ok(made) = term.map_get(atoms::made()) {
        rules.made = made_map(made)?;
    }
    Ok(Ok(rules))
}

fn count(n: i64) -> Result<u32, ArgError> {
    u32::try_from(n).ok().filter(|n| *n > 0).ok_or(ArgError {
        reason: "bad_keep",
        detail: format!("keep must be at least 1, got {n}"),
    })
}

fn policy_error(e: PolicyError) -> ArgError {
    ArgError {
        reason: e.reason(),
        detail: e.to_string(),
    }
}

fn made_map(term: Term) -> NifResult<HashMap<String, i64>> {
    let Some(iter) = MapIterator::new(term) else {
        return Err(rustler::Error::BadArg);
    };
    let mut made = HashMap::new();
    for (name, ms) in iter {
        let name = name.decode::<Binary>()?;
        made.insert(
            String::from_utf8_lossy(name.as_slice()).into_owned(),
            ms.decode::<i64>()?,
        );
    }
    Ok(made)
}
