//! TOML errors without the offending text: toml's own `Display` quotes the line (a secret may
//! sit on it) and serde's messages quote the value (`invalid type: string "…"`). What is kept:
//! the message with quoted values elided, the key path, and the line and column.

/// `line L, column C: message (in `key.path`)`, safe to log.
pub(super) fn describe(e: &toml::de::Error, text: &str) -> String {
    let message = elide_quoted(e.message());
    let keys = keys(e);
    let key = if keys.is_empty() {
        String::new()
    } else {
        format!(" (key `{keys}`)")
    };
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}{key}")
        }
        None => format!("{message}{key}"),
    }
}

/// The dotted key path toml attaches to the error, read from its snippet-free `Display`.
fn keys(e: &toml::de::Error) -> String {
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    shown
        .lines()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or_default()
        .to_owned()
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Replaces every `"…"` run with `"…"`: serde puts the rejected value there.
fn elide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    out.push_str(parts.next().unwrap_or_default());
    for (i, part) in parts.enumerate() {
        out.push('"');
        if i % 2 == 1 {
            out.push_str(part);
        } else {
            out.push('…');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        assert_eq!(line_column("a = 1\nbé = x", 10), (2, 4));
        assert_eq!(line_column("", 5), (1, 1));
    }

    #[test]
    fn quoted_values_are_elided() {
        assert_eq!(
            elide_quoted(r#"invalid type: string "hunter2", expected a sequence"#),
            r#"invalid type: string "…", expected a sequence"#
        );
        assert_eq!(elide_quoted("unknown field `x`"), "unknown field `x`");
    }
}
