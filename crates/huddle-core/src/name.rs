//! When two agent names are "the same name": the fold every name comparison goes through.
//!
//! Names are shown as given, but an agent reads `Room-Bot`, `room‐bot` (U+2010 hyphen),
//! `room-bot` followed by an invisible U+200B, or `аlice` (Cyrillic а) as `room-bot` and
//! `alice`. If those were different names, anyone could post what looks like a server
//! notice or a message from another member (a prompt-injection route into AI agents).
//! So the reserved `room-bot`, uniqueness within a room, and lookups by name (DM
//! recipients, kick/promote/demote targets, reconnects) all compare [`fold`]ed names.
//!
//! The fold, in order:
//! 1. NFKC: compatibility forms become their plain letters (fullwidth `Ａ`, ligature `ﬁ`).
//! 2. Case: upper- then lower-casing, which also folds `ß`/`ss`, `ſ`/`s`, `ı`/`i`.
//! 3. The confusable skeleton of Unicode TS #39: look-alike letters and punctuation from
//!    other scripts map to one prototype (Cyrillic `а` → `a`, U+2010 and U+2212 → `-`),
//!    and default-ignorable (invisible) code points are dropped.
//! 4. Lower-casing again (a few prototypes are capitals, e.g. digit `0` → `O`), and
//!    whitespace trimmed and collapsed.
//!
//! This is deliberately coarse: `agent1` and `agentl` are the same name, as they look.

use unicode_normalization::UnicodeNormalization;

/// The comparison form of `name` (never shown to anyone).
///
/// Lookups fold every member's name, so the common all-ASCII name takes a table of
/// per-character folds (the full fold costs microseconds, mostly in the skeleton).
pub fn fold(name: &str) -> String {
    let folded = if name.is_ascii() {
        fold_ascii(name).unwrap_or_else(|| fold_full(name))
    } else {
        fold_full(name)
    };
    collapse_whitespace(&folded)
}

fn fold_full(name: &str) -> String {
    let compat: String = name.nfkc().collect();
    let cased = compat.to_uppercase().to_lowercase();
    let skeleton: String = unicode_security::skeleton(&cased).collect();
    skeleton.to_lowercase()
}

/// ASCII is already NFKC and its case fold is per character, so its fold is the
/// concatenation of the characters' folds, as long as those are ASCII too (the final
/// decomposition of the skeleton then has nothing to reorder). `None` otherwise.
fn fold_ascii(name: &str) -> Option<String> {
    static TABLE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0u8..128)
            .map(|b| fold_full(char::from(b).encode_utf8(&mut [0; 4])))
            .collect()
    });
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let piece = &table[usize::from(b)];
        if !piece.is_ascii() {
            return None;
        }
        out.push_str(piece);
    }
    Some(out)
}

/// Trims `s` and turns every run of whitespace inside it into one space.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Do `a` and `b` name the same agent?
pub fn same(a: &str, b: &str) -> bool {
    a == b || fold(a) == fold(b)
}

/// Unicode general category Cf ("format"): invisible characters that change how text
/// around them is shown (zero-width spaces and joiners, bidirectional overrides, tags).
/// In a name they only serve to make two names look alike, or to reorder what is shown.
/// The table is the complete category as of Unicode 16.0.
pub fn is_format_char(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = u32::from(c);
    CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_fold_to_the_plain_name() {
        for (given, plain) in [
            ("Room-Bot", "room-bot"),
            ("ROOM-BOT", "room-bot"),
            ("room-bot\u{200B}", "room-bot"),
            ("room\u{2010}bot", "room-bot"),
            ("room\u{2011}bot", "room-bot"),
            ("room\u{2212}bot", "room-bot"),
            ("ｒｏｏｍ－ｂｏｔ", "room-bot"),
            ("r\u{043E}\u{043E}m-b\u{043E}t", "room-bot"),
            ("  room-bot ", "room-bot"),
            ("\u{0430}lice", "alice"),
            ("Alice", "alice"),
            ("ALICE", "alice"),
            ("\u{0391}lice", "alice"),
            ("stra\u{DF}e", "strasse"),
            ("caf\u{E9}", "cafe\u{301}"),
            ("bob  the\u{A0}builder", "bob the builder"),
        ] {
            assert_eq!(fold(given), fold(plain), "{given:?} vs {plain:?}");
            assert!(same(given, plain), "{given:?} vs {plain:?}");
        }
    }

    #[test]
    fn different_names_stay_different() {
        for (a, b) in [
            ("alice", "bob"),
            ("room-bot", "roombot"),
            ("room-bot", "room-bot2"),
            ("agent-1", "agent-2"),
            ("alice", "alice smith"),
            ("\u{1F600}", "\u{1F601}"),
        ] {
            assert!(!same(a, b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn the_ascii_shortcut_agrees_with_the_full_fold() {
        let printable: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
        let mut samples: Vec<String> = vec![
            "Room-Bot".into(),
            "agent-1".into(),
            "rn m".into(),
            "  a  b ".into(),
        ];
        for &a in &printable {
            for &b in &printable {
                samples.push([a, b].iter().collect());
            }
        }
        for s in samples {
            assert_eq!(fold(&s), collapse_whitespace(&fold_full(&s)), "{s:?}");
        }
    }

    #[test]
    fn format_characters_are_recognised() {
        for c in [
            '\u{AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{200E}',
            '\u{202E}',
            '\u{2060}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{1343F}',
        ] {
            assert!(is_format_char(c), "{c:?}");
        }
        for c in ['a', '-', ' ', '\u{2010}', '\u{0430}', '\u{E9}', '\u{1F600}'] {
            assert!(!is_format_char(c), "{c:?}");
        }
    }
}
