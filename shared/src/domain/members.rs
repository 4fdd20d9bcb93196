//! Member facts every feature shares: the display name and how a member is shown to others, the
//! leaderboard opt-out, and when the member first appeared (registration).
//!
//! - [`display_name`] validates what a member asks to be called.
//! - [`public_name`] is the one function that decides how a member appears to other members
//!   (boards, a referrer shown to an invitee): never the raw user id.
//! - [`registered_at`] is the one rule for "when did this member register".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

use super::{DomainError, UserId};

/// A display name has 1 to this many grapheme clusters (what a reader counts as characters).
pub const MAX_NAME_GRAPHEMES: usize = 24;
/// Code points in one grapheme cluster: enough for any emoji sequence, not for stacked marks.
pub const MAX_CLUSTER_CHARS: usize = 12;
/// UTF-8 bytes of a display name.
pub const MAX_NAME_BYTES: usize = 256;
/// Names an admin may reserve.
pub const MAX_RESERVED_NAMES: usize = 1000;
/// How a member who opted out of boards is shown (still ranked).
pub const ANONYMOUS: &str = "anonymous";

/// A member's profile as stored. Absent fields are defaults: no name, shown on boards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default = "visible")]
    pub leaderboard_visible: bool,
    /// First appearance recorded on the profile: by a profile write or the first `GET /v1/me` of
    /// a member without an account, or by the backfill (the ledger records it on the account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
    /// The registration date a service set (the shop knows it); it wins over first appearance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Bumped by every write; each write is conditioned on the version it read.
    #[serde(default)]
    pub version: u64,
}

fn visible() -> bool {
    true
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            display_name: None,
            leaderboard_visible: true,
            first_seen: None,
            registered_at: None,
            updated_at: None,
            version: 0,
        }
    }
}

/// When the member registered: the date a service set, else the earliest first appearance (the
/// account's creation or the profile's record), else unknown. Features that depend on it (the
/// referral window) treat unknown as "not new".
pub fn registered_at(profile: &Profile, account_first_seen: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    profile
        .registered_at
        .or(match (profile.first_seen, account_first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
}

/// Whether a `GET /v1/me` must record the member's first appearance: nothing has, and the member
/// has no account (an existing account without a record predates it: the backfill fills those).
pub fn first_appearance_due(profile: &Profile, account_exists: bool) -> bool {
    !account_exists && profile.first_seen.is_none() && profile.registered_at.is_none()
}

/// How a member appears to other members: "anonymous" when opted out of boards, else the display
/// name, else [`masked_id`].
pub fn public_name(user: &UserId, profile: &Profile) -> String {
    if !profile.leaderboard_visible {
        return ANONYMOUS.to_owned();
    }
    match &profile.display_name {
        Some(name) => name.clone(),
        None => masked_id(user),
    }
}

/// A member id shown without revealing it: the first character and the last two around `***`
/// (`u***42`); ids shorter than six characters keep only the first (`u***`), shorter than three
/// nothing (`***`). Many ids share a mask, so it cannot be reversed.
pub fn masked_id(user: &UserId) -> String {
    let id: Vec<char> = user.as_str().chars().collect();
    match id.len() {
        0..=2 => "***".to_owned(),
        3..=5 => format!("{}***", id[0]),
        n => format!("{}***{}{}", id[0], id[n - 2], id[n - 1]),
    }
}

/// The stored form of a requested display name, or why it is refused: trimmed, runs of spaces
/// made one, NFC; 1–[`MAX_NAME_GRAPHEMES`] grapheme clusters; only visible characters
/// ([`all_visible`]); not a reserved name ([`reserved_key`]), and never "anonymous".
pub fn display_name(raw: &str, reserved: &ReservedNames) -> Result<String, DomainError> {
    let invalid = |reason: &str| DomainError::invalid("display_name", reason);
    let collapsed = raw
        .split(' ')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name: String = collapsed.trim().nfc().collect();
    if name.is_empty() {
        return Err(invalid("must not be empty or only spaces"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid("is too long"));
    }
    let mut clusters = 0;
    for cluster in name.graphemes(true) {
        clusters += 1;
        if clusters > MAX_NAME_GRAPHEMES {
            return Err(invalid("must be at most 24 characters"));
        }
        if cluster.chars().count() > MAX_CLUSTER_CHARS {
            return Err(invalid("has a character with too many marks"));
        }
    }
    if !all_visible(&name) {
        return Err(invalid("must not contain control or invisible characters"));
    }
    let key = reserved_key(&name);
    if key == ANONYMOUS || reserved.contains(&key) {
        return Err(DomainError::ReservedName);
    }
    Ok(name)
}

/// Characters that draw nothing but are letters or marks by category.
const INVISIBLE: &[char] = &[
    '\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', // Hangul fillers
    '\u{2800}', // braille blank
    '\u{034F}', // combining grapheme joiner
    '\u{17B4}', '\u{17B5}', // Khmer inherent vowels
    '\u{180B}', '\u{180C}', '\u{180D}', '\u{180E}', '\u{180F}', // Mongolian selectors and separator
];

const ZWJ: char = '\u{200D}';
const ZWNJ: char = '\u{200C}';
const VS15: char = '\u{FE0E}';
const VS16: char = '\u{FE0F}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

fn is_tag(c: char) -> bool {
    ('\u{E0020}'..=CANCEL_TAG).contains(&c)
}

fn is_variation_selector(c: char) -> bool {
    ('\u{FE00}'..='\u{FE0F}').contains(&c) || ('\u{E0100}'..='\u{E01EF}').contains(&c)
}

fn group(c: char) -> GeneralCategoryGroup {
    c.general_category_group()
}

/// A letter or mark of a script that uses joiners in words (Hebrew and after: Arabic, Persian,
/// the Indic scripts), not Latin, Greek or Cyrillic.
fn joins_in_script(c: char) -> bool {
    c >= '\u{0590}'
        && matches!(
            group(c),
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark
        )
}

/// Whether every character of a name may appear in it: no control, format (bidi overrides, zero
/// width spaces, the BOM), private-use, unassigned or invisible characters; spaces only as U+0020
/// and never carrying marks; no cluster that starts with a mark. Joiners are allowed where they
/// shape what is seen: a zero width joiner between emoji (👩‍💻, 🏳️‍🌈), a joiner or non-joiner
/// between letters of a script that uses them (Persian حسینی‌پور, Sinhala ශ්‍රී); an emoji
/// variation selector only after an emoji; tag characters only as a subdivision flag (🏴 + 3–6
/// tag letters and digits + cancel tag).
fn all_visible(name: &str) -> bool {
    for cluster in name.graphemes(true) {
        let mut chars = cluster.chars();
        let first = chars.next();
        if first.is_some_and(|c| group(c) == GeneralCategoryGroup::Mark) {
            return false;
        }
        if first == Some(' ') && cluster != " " {
            return false;
        }
        if cluster.chars().any(is_tag) && !is_subdivision_flag(cluster) {
            return false;
        }
    }
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().all(|(i, &c)| {
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + 1).copied();
        char_allowed(c, before, after)
    })
}

fn char_allowed(c: char, before: Option<char>, after: Option<char>) -> bool {
    if INVISIBLE.contains(&c) {
        return false;
    }
    if is_variation_selector(c) {
        return (c == VS15 || c == VS16) && before.is_some_and(|b| b.is_emoji_char());
    }
    let in_script = before.is_some_and(joins_in_script) && after.is_some_and(joins_in_script);
    match c.general_category() {
        GeneralCategory::SpaceSeparator => c == ' ',
        GeneralCategory::Control
        | GeneralCategory::Surrogate
        | GeneralCategory::PrivateUse
        | GeneralCategory::Unassigned
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => false,
        GeneralCategory::Format if c == ZWJ => {
            let emoji = before.is_some_and(|b| b == VS16 || b.is_emoji_char())
                && after.is_some_and(|a| a.is_emoji_char());
            emoji || in_script
        }
        GeneralCategory::Format if c == ZWNJ => in_script,
        // Checked with their cluster: only in a subdivision flag.
        GeneralCategory::Format => is_tag(c),
        _ => true,
    }
}

/// 🏴 followed by 3–6 tag letters or digits and the cancel tag (🏴󠁧󠁢󠁳󠁣󠁴󠁿).
fn is_subdivision_flag(cluster: &str) -> bool {
    let chars: Vec<char> = cluster.chars().collect();
    let Some((&BLACK_FLAG, rest)) = chars.split_first() else {
        return false;
    };
    let Some((&CANCEL_TAG, tags)) = rest.split_last() else {
        return false;
    };
    (3..=6).contains(&tags.len())
        && tags
            .iter()
            .all(|&t| ('\u{E0061}'..='\u{E007A}').contains(&t) || ('\u{E0030}'..='\u{E0039}').contains(&t))
}

/// Characters that change nothing a reader sees in a name that passed [`display_name`].
fn ignorable(c: char) -> bool {
    c.is_whitespace() || c == ZWJ || c == ZWNJ || is_variation_selector(c) || is_tag(c)
}

/// The form names are compared in when checking reservations: NFKC (full-width and styled letters
/// become plain ones), lower case, without whitespace, joiners, variation selectors or tags.
/// "ＡＤ min" and "admin" share a key.
pub fn reserved_key(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|&c| !ignorable(c))
        .collect()
}

/// The names no member may take, as [`reserved_key`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedNames {
    pub names: BTreeSet<String>,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl ReservedNames {
    /// An admin's list, normalized: each name's key, sorted and without repeats. Each must be a
    /// non-empty name of at most [`MAX_NAME_GRAPHEMES`] clusters; at most [`MAX_RESERVED_NAMES`].
    pub fn from_list(names: &[String]) -> Result<BTreeSet<String>, DomainError> {
        if names.len() > MAX_RESERVED_NAMES {
            return Err(DomainError::invalid("names", "at most 1000 names"));
        }
        names
            .iter()
            .map(|name| {
                if name.len() > MAX_NAME_BYTES {
                    return Err(DomainError::invalid("names", "each name at most 256 bytes"));
                }
                let key = reserved_key(name);
                if key.is_empty() || key.graphemes(true).count() > MAX_NAME_GRAPHEMES {
                    Err(DomainError::invalid(
                        "names",
                        "each name must have 1 to 24 characters besides spaces",
                    ))
                } else {
                    Ok(key)
                }
            })
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.names.contains(key)
    }
}

#[cfg(test)]
mod tests;
