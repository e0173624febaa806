//! The cron parser, describer and fire-time search on arbitrary UTF-8: never panic, and agree
//! with each other.
#![no_main]

use guard_core::schedule::{describe, next_fires, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let valid = validate(expr);
    let described = describe(expr);
    let fires = next_fires(expr, "Europe/Berlin", 0, 3);

    // All three parse the same way.
    assert_eq!(
        valid.is_ok(),
        described.is_ok(),
        "validate vs describe: {expr:?}"
    );
    assert_eq!(
        valid.is_ok(),
        fires.is_ok(),
        "validate vs next_fires: {expr:?}"
    );
    if let Ok(normalized) = &valid {
        // Normalizing is idempotent.
        assert_eq!(
            validate(normalized).as_ref().ok(),
            Some(normalized),
            "{expr:?}"
        );
    }
    if let Ok(text) = &described {
        // No empty list or stray separator left in the English: an empty list phrase shows up
        // as a double space, a space before a comma, or a dangling word or comma at the end.
        assert!(
            !(text.contains("  ")
                || text.contains(" ,")
                || text.contains(",,")
                || text.contains("days of")
                || text.starts_with(' ')
                || text.ends_with([' ', ','])
                || text.ends_with(" on")
                || text.ends_with(" in")),
            "{expr:?} is described as {text:?}"
        );
    }
    if let Ok(fires) = &fires {
        assert_eq!(fires.len(), 3, "{expr:?}");
        assert!(fires[0] > 0, "{expr:?}: {fires:?}");
        assert!(fires.windows(2).all(|w| w[0] < w[1]), "{expr:?}: {fires:?}");
    }
    // Error messages are one line.
    for err in [valid.err(), described.err(), fires.err()]
        .into_iter()
        .flatten()
    {
        assert!(!err.to_string().contains('\n'), "{expr:?}: {err}");
    }
});
