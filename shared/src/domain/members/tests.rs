use super::*;

use proptest::prelude::*;

fn none() -> ReservedNames {
    ReservedNames::default()
}

fn reserved(names: &[&str]) -> ReservedNames {
    let list: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    ReservedNames {
        names: ReservedNames::from_list(&list).unwrap(),
        ..ReservedNames::default()
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn names_are_trimmed_and_spaces_collapsed() {
    assert_eq!(display_name("  Mei  Lin ", &none()).unwrap(), "Mei Lin");
    assert_eq!(display_name("\tBob\n", &none()).unwrap(), "Bob");
    // Composed and decomposed é store the same (NFC).
    assert_eq!(display_name("Ame\u{301}lie", &none()).unwrap(), "Am\u{e9}lie");
}

#[test]
fn length_counts_grapheme_clusters_not_bytes() {
    let cjk = "小".repeat(24);
    assert_eq!(display_name(&cjk, &none()).unwrap(), cjk);
    assert!(display_name(&"小".repeat(25), &none()).is_err());
    // A family emoji is 7 code points and one cluster: 24 of them is 24 characters, but too many bytes.
    let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    assert_eq!(display_name(family, &none()).unwrap(), family);
    assert_eq!(
        display_name(&family.repeat(10), &none()).unwrap(),
        family.repeat(10)
    );
    assert!(
        display_name(&family.repeat(11), &none()).is_err(),
        "over 256 bytes"
    );
    assert!(display_name(&"a".repeat(24), &none()).is_ok());
    // Exactly 256 bytes pass (10 families and 6 letters: 16 characters), 257 do not.
    let full = format!("{}abcdef", family.repeat(10));
    assert_eq!(full.len(), MAX_NAME_BYTES);
    assert!(display_name(&full, &none()).is_ok());
    assert!(display_name(&format!("{full}g"), &none()).is_err());
    assert!(display_name(&"a".repeat(25), &none()).is_err());
    // A letter with 12 stacked marks is refused (13 code points in one cluster); 11 are fine.
    assert!(display_name(&format!("a{}", "\u{334}".repeat(12)), &none()).is_err());
    assert!(display_name(&format!("a{}", "\u{334}".repeat(11)), &none()).is_ok());
}

#[test]
fn empty_and_whitespace_only_names_are_refused() {
    for raw in ["", " ", "   ", "\t\n", "\u{3000}"] {
        let err = display_name(raw, &none()).unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "display_name",
                    ..
                }
            ),
            "{raw:?}: {err}"
        );
    }
}

#[test]
fn control_and_invisible_characters_are_refused() {
    for raw in [
        "Bob\u{0}",
        "Bo\nb",
        "Bo\u{7}b",
        "Bob\u{200B}", // zero width space
        "Bo\u{200D}b", // joiner between letters
        "\u{200D}👍",  // joiner at the start
        "👍\u{200D}",  // joiner at the end
        "\u{202E}Bob", // right-to-left override
        "Bob\u{2066}", // isolate
        "\u{FEFF}Bob", // byte order mark
        "\u{3164}",    // Hangul filler
        "a\u{3164}b",
        "\u{2800}\u{2800}",  // braille blank
        "Bo\u{E000}b",       // private use
        "Bob\u{E0041}",      // a tag outside a flag
        "Bob\u{A0}Lee",      // no-break space
        "Bob\u{3000}Lee",    // ideographic space
        "Bo\u{2028}b",       // line separator
        "a\u{34F}b",         // combining grapheme joiner
        "\u{378}",           // unassigned
        "👍\u{200D}\u{301}", // a joiner followed by a mark, not an emoji
        "🏴\u{200C}",        // a format character in a flag's cluster that is not a tag
        "a\u{200C}b",        // zero width non-joiner between Latin letters
        "admin\u{FE0F}",     // an emoji selector after a letter
        "Anonymous\u{FE0E}",
        "Bob\u{E0101}", // an ideographic variation selector
        "\u{300}",      // a lone mark
        " \u{300}",
        "a \u{300}b", // a mark on a space
        "🏴\u{E0061}\u{E0064}\u{E006D}\u{E0069}\u{E006E}\u{E0073}\u{E0074}\u{E007F}", // 7 tags
        "🏴\u{E0067}\u{E0062}", // no cancel tag
        "🏴\u{E0041}\u{E0042}\u{E0043}\u{E007F}", // capital tags
        "a\u{E0067}\u{E0062}\u{E0065}\u{E007F}", // tags without the flag
        "\u{263A}\u{FE00}", // a variation selector that is not an emoji's
        "پ\u{200C}a", // a non-joiner between Persian and Latin
        "a\u{200D}پ",
    ] {
        let err = display_name(raw, &none()).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { .. }), "{raw:?} was accepted");
    }
}

#[test]
fn emoji_sequences_are_names() {
    for raw in [
        "👩\u{200D}💻 dev",
        "🏳\u{FE0F}\u{200D}🌈",
        "🏃🏽\u{200D}♀\u{FE0F}",
        "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", // England
        "🇨🇳 Li",
        "1️⃣",
        "Zoë",
        "李小龍",
        "محمد",
        "नमस्ते",
        "حسینی\u{200C}پور", // Persian with a zero width non-joiner
        "ශ්\u{200D}රී",       // Sinhala with a zero width joiner after the virama
        "❤\u{FE0F} Mei",
        "\u{263A}\u{FE0E} Mei", // text presentation of an emoji
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
    ] {
        assert!(display_name(raw, &none()).is_ok(), "{raw:?} was refused");
    }
}

#[test]
fn reserved_names_are_refused_case_and_width_insensitively() {
    let list = reserved(&["Admin", "official"]);
    for raw in [
        "admin",
        "ADMIN",
        "Admin",
        " ad min ",
        "ＡＤＭＩＮ",
        "Official",
        "OFFI CIAL",
    ] {
        assert_eq!(
            display_name(raw, &list),
            Err(DomainError::ReservedName),
            "{raw:?}"
        );
    }
    for raw in ["admin2", "an admin", "officials"] {
        assert!(display_name(raw, &list).is_ok(), "{raw:?}");
    }
    // Invisible characters never tell a reserved name apart.
    assert_eq!(reserved_key("ad\u{200D}min\u{FE0F}"), "admin");
    assert_eq!(reserved_key("Ad Min"), "admin");
    // Nobody may pose as an opted-out member, reserved or not.
    assert_eq!(display_name("Anonymous", &none()), Err(DomainError::ReservedName));
}

#[test]
fn reserved_lists_are_normalized_and_bounded() {
    let list = ReservedNames::from_list(&["Admin".into(), "ADMIN".into(), " Shop Owner ".into()]).unwrap();
    assert_eq!(list.into_iter().collect::<Vec<_>>(), ["admin", "shopowner"]);
    assert!(ReservedNames::from_list(&["  ".into()]).is_err());
    assert!(ReservedNames::from_list(&["x".repeat(25)]).is_err());
    assert!(ReservedNames::from_list(&["x".repeat(24)]).is_ok());
    // A name is at most 256 bytes as sent, whatever its key (combining marks add no cluster).
    let marks = format!("a{}", "\u{301}".repeat(127));
    assert_eq!(marks.len(), 255);
    assert!(ReservedNames::from_list(std::slice::from_ref(&marks)).is_ok());
    assert!(ReservedNames::from_list(&[format!("{marks}b")]).is_ok());
    assert!(ReservedNames::from_list(&[format!("{marks}bc")]).is_err());
    let many: Vec<String> = (0..=MAX_RESERVED_NAMES).map(|i| format!("n{i}")).collect();
    assert!(ReservedNames::from_list(&many).is_err());
    assert!(ReservedNames::from_list(&many[..MAX_RESERVED_NAMES]).is_ok());
}

#[test]
fn public_names() {
    let u = user("u-8c1e42");
    let mut profile = Profile::default();
    assert_eq!(public_name(&u, &profile), "u***42");
    profile.display_name = Some("Mei".into());
    assert_eq!(public_name(&u, &profile), "Mei");
    profile.leaderboard_visible = false;
    assert_eq!(public_name(&u, &profile), ANONYMOUS);
    profile.display_name = None;
    assert_eq!(public_name(&u, &profile), ANONYMOUS);
}

#[test]
fn masks_by_length() {
    assert_eq!(masked_id(&user("a")), "***");
    assert_eq!(masked_id(&user("ab")), "***");
    assert_eq!(masked_id(&user("abc")), "a***");
    assert_eq!(masked_id(&user("abcde")), "a***");
    assert_eq!(masked_id(&user("abcdef")), "a***ef");
}

#[test]
fn registration_prefers_the_service_then_the_earliest_appearance() {
    let early = at("2025-01-01T00:00:00Z");
    let late = at("2026-06-01T00:00:00Z");
    let set = at("2020-03-04T05:06:07Z");
    let mut p = Profile::default();
    assert_eq!(registered_at(&p, None), None);
    assert_eq!(registered_at(&p, Some(late)), Some(late));
    p.first_seen = Some(early);
    assert_eq!(registered_at(&p, Some(late)), Some(early));
    assert_eq!(registered_at(&p, None), Some(early));
    p.first_seen = Some(late);
    assert_eq!(registered_at(&p, Some(early)), Some(early));
    p.registered_at = Some(set);
    assert_eq!(registered_at(&p, Some(early)), Some(set));
    // The service's date wins even when it is later than the first appearance.
    p.registered_at = Some(at("2026-11-01T00:00:00Z"));
    assert_eq!(registered_at(&p, Some(early)), p.registered_at);
}

#[test]
fn first_appearance_is_recorded_once_and_only_without_an_account() {
    let mut p = Profile::default();
    assert!(first_appearance_due(&p, false));
    assert!(!first_appearance_due(&p, true));
    p.first_seen = Some(at("2026-01-01T00:00:00Z"));
    assert!(!first_appearance_due(&p, false));
    p.first_seen = None;
    p.registered_at = Some(at("2026-01-01T00:00:00Z"));
    assert!(!first_appearance_due(&p, false));
}

#[test]
fn a_stored_profile_without_fields_is_visible_and_nameless() {
    let p: Profile = serde_json::from_str("{}").unwrap();
    assert_eq!(p, Profile::default());
    assert!(p.leaderboard_visible);
}

proptest! {
    /// Whatever is accepted is stored in a form that is accepted again unchanged, and meets the
    /// limits.
    #[test]
    fn accepted_names_are_stable_and_within_limits(raw in prop_oneof![any::<String>(), "\\PC{0,30}"]) {
        if let Ok(name) = display_name(&raw, &none()) {
            prop_assert_eq!(display_name(&name, &none()), Ok(name.clone()));
            let clusters = name.graphemes(true).count();
            prop_assert!((1..=MAX_NAME_GRAPHEMES).contains(&clusters));
            prop_assert_eq!(name.trim(), name.as_str());
            prop_assert!(!name.contains("  "));
            prop_assert!(name.chars().all(|c| !c.is_control()));
        }
    }

    /// A reserved name is refused however it is written in case.
    #[test]
    fn reservation_ignores_case(name in "[a-zA-Z]{1,24}", flips in proptest::collection::vec(any::<bool>(), 24)) {
        let list = ReservedNames { names: ReservedNames::from_list(std::slice::from_ref(&name)).unwrap(), ..Default::default() };
        let variant: String = name
            .chars()
            .zip(flips)
            .map(|(c, f)| if f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        prop_assert_eq!(display_name(&variant, &list), Err(DomainError::ReservedName));
    }

    /// A masked id never shows the whole id, and is at most six characters.
    #[test]
    fn masks_never_reveal_the_id(id in "[!-\"$-)+-~]{1,128}") {
        let u = UserId::parse(&id).unwrap();
        let mask = masked_id(&u);
        prop_assert!(!mask.contains(&id), "{} shows {}", mask, id);
        prop_assert!(mask.chars().count() <= 6);
        prop_assert_eq!(public_name(&u, &Profile::default()), mask);
    }
}
