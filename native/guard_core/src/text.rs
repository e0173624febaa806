//! How user text is quoted in an error message (crate-internal).

/// `text` as quoted in an error message: one line of printable characters, at most
/// `max_chars` characters (then `...`). Control characters, white space other than a space,
/// invisible and bidi-control characters, `"` and `\` are escaped as Rust's
/// `char::escape_debug` does (`\0`, `\u{1b}`, `\u{a0}`, `\"`), so a NUL or an ESC sequence in
/// the input never reaches an operator's terminal; printable Unicode such as `é` and the
/// single quote stay as they are.
pub(crate) fn quoted(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push_str("...");
            break;
        }
        if c == '\'' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn escapes_control_quotes_and_invisible_characters_keeps_printable_unicode() {
        assert_eq!(
            quoted("a\0b\u{1b}[2J\"\\'é\u{a0}\u{202e}", 100),
            "a\\0b\\u{1b}[2J\\\"\\\\'é\\u{a0}\\u{202e}"
        );
        assert_eq!(quoted("line\nnext\t", 100), "line\\nnext\\t");
    }

    #[test]
    fn cuts_after_the_limit_in_characters_not_bytes() {
        assert_eq!(quoted("ééé", 3), "ééé");
        assert_eq!(quoted("éééé", 3), "ééé...");
        assert_eq!(quoted("", 0), "");
        assert_eq!(quoted("x", 0), "...");
    }
}
