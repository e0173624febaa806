//! Time zone names: IANA names checked against chrono-tz, and `local` resolved to the node's
//! IANA name (never `chrono::Local`, which cannot tell the two passes of a repeated hour apart).
//!
//! `local` is resolved once per OS process (see [`local_zone`]) so that the schedule functions
//! never touch a file after the first resolution: the NIF calls them on normal schedulers.

use std::path::Path;
use std::sync::OnceLock;

use chrono_tz::Tz;

use super::error::ScheduleError;

/// Where the node's zone is configured on Linux.
const ETC_TIMEZONE: &str = "/etc/timezone";
const ETC_LOCALTIME: &str = "/etc/localtime";

/// Parses a case-sensitive IANA name (as chrono-tz spells it; `UTC` included).
fn parse_iana(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// `zone` as a chrono-tz zone: an IANA name, or `local` for the node's zone ([`local_zone`]).
pub(crate) fn tz_of(zone: &str) -> Result<Tz, ScheduleError> {
    if zone == "local" {
        return Ok(local_zone());
    }
    parse_iana(zone).ok_or_else(|| ScheduleError::BadZone {
        zone: zone.to_string(),
    })
}

/// The node's zone, resolved by [`local_zone_name`] from `TZ`, `/etc/timezone` and
/// `/etc/localtime` on the first call in this OS process and cached for its lifetime; later
/// calls touch no file.
///
/// Like libc's `tzset`, which reads the system zone once, a node picks up a change of the
/// system zone (or of `TZ`) only when it restarts. The NIF library calls this from its load
/// and upgrade callbacks, so the files are read while the code is loaded and never by a NIF
/// running on a normal scheduler.
///
/// ```
/// use guard_core::schedule::{local_zone, resolve_zone};
///
/// // Whatever the machine's zone is, `local` names it.
/// assert_eq!(resolve_zone("local").as_deref(), Ok(local_zone().name()));
/// ```
pub fn local_zone() -> Tz {
    static LOCAL: OnceLock<Tz> = OnceLock::new();
    *LOCAL.get_or_init(|| {
        let name = local_zone_name(
            std::env::var("TZ").ok().as_deref(),
            Path::new(ETC_TIMEZONE),
            Path::new(ETC_LOCALTIME),
        );
        // `local_zone_name` only returns names that parse; UTC is the documented fallback.
        parse_iana(&name).unwrap_or(Tz::UTC)
    })
}

/// The IANA name after `zoneinfo/` in a path such as `/usr/share/zoneinfo/Europe/Berlin`
/// (also `zoneinfo/posix/...` and `zoneinfo/right/...`), if it is one chrono-tz knows.
fn name_after_zoneinfo(path: &str) -> Option<Tz> {
    let (_, tail) = path.rsplit_once("zoneinfo/")?;
    let tail = tail
        .strip_prefix("posix/")
        .or_else(|| tail.strip_prefix("right/"))
        .unwrap_or(tail);
    parse_iana(tail)
}

/// The node's IANA zone name, from (in order) the `TZ` environment value (`Europe/Berlin` or
/// `:Europe/Berlin`, or a path into a `zoneinfo` directory; anything else is skipped), the
/// first line of `etc_timezone`, the target of the `etc_localtime` symlink after
/// `.../zoneinfo/`; `UTC` when none of them names a zone chrono-tz knows.
///
/// Takes the environment value and the paths so tests can point it at their own files; it
/// reads them on every call (the cached resolution the schedule functions use is
/// [`local_zone`]).
///
/// ```
/// use std::path::Path;
/// use guard_core::schedule::local_zone_name;
///
/// let none = Path::new("/nonexistent");
/// assert_eq!(local_zone_name(Some(":Europe/Berlin"), none, none), "Europe/Berlin");
/// assert_eq!(local_zone_name(Some("/usr/share/zoneinfo/Asia/Kolkata"), none, none), "Asia/Kolkata");
/// # let dir = tempfile::tempdir()?;
/// # let etc_timezone = dir.path().join("timezone");
/// std::fs::write(&etc_timezone, "America/New_York\n")?;
/// assert_eq!(local_zone_name(Some("CET-1CEST"), &etc_timezone, none), "America/New_York");
/// assert_eq!(local_zone_name(None, none, none), "UTC");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn local_zone_name(tz_env: Option<&str>, etc_timezone: &Path, etc_localtime: &Path) -> String {
    if let Some(value) = tz_env {
        let value = value.trim();
        let value = value.strip_prefix(':').unwrap_or(value);
        if let Some(tz) = parse_iana(value).or_else(|| name_after_zoneinfo(value)) {
            return tz.name().to_string();
        }
    }
    if let Ok(text) = std::fs::read_to_string(etc_timezone) {
        if let Some(tz) = text.lines().next().and_then(|l| parse_iana(l.trim())) {
            return tz.name().to_string();
        }
    }
    if let Ok(target) = std::fs::read_link(etc_localtime) {
        if let Some(tz) = name_after_zoneinfo(&target.to_string_lossy()) {
            return tz.name().to_string();
        }
    }
    Tz::UTC.name().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in this binary that resolves `local` or sets `TZ`: the cache is per
    /// process, so a second such test would see this one's zone.
    #[test]
    fn local_is_resolved_once_per_process() {
        std::env::set_var("TZ", "Asia/Kolkata");
        assert_eq!(local_zone(), Tz::Asia__Kolkata);
        // A later change of the system zone is not seen until the process restarts.
        std::env::set_var("TZ", "America/Santiago");
        assert_eq!(tz_of("local"), Ok(Tz::Asia__Kolkata));
        assert_eq!(
            crate::schedule::resolve_zone("local").as_deref(),
            Ok("Asia/Kolkata")
        );
        assert_eq!(
            crate::schedule::utc_offset_seconds("local", 0),
            Ok(5 * 3600 + 1800)
        );
        // The uncached resolver does see it.
        let none = Path::new("/nonexistent");
        assert_eq!(
            local_zone_name(std::env::var("TZ").ok().as_deref(), none, none),
            "America/Santiago"
        );
        std::env::remove_var("TZ");
    }
}
