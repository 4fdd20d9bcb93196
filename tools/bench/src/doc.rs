//! docs/PERFORMANCE.md is prose with generated parts: each between `<!-- bench:NAME -->` and
//! `<!-- /bench:NAME -->`, replaced by a run. A run that skips a section leaves it as it was.

/// Replaces the generated part `name` of `doc` with `content`. Errs when the markers are missing.
pub fn replace(doc: &str, name: &str, content: &str) -> Result<String, String> {
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let start = doc
        .find(&open)
        .ok_or_else(|| format!("docs/PERFORMANCE.md has no {open}"))?
        + open.len();
    let end = doc[start..]
        .find(&close)
        .ok_or_else(|| format!("docs/PERFORMANCE.md has no {close}"))?
        + start;
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..start],
        content.trim_end(),
        &doc[end..]
    ))
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", header.join(" | "));
    for (i, _) in header.iter().enumerate() {
        out.push_str(if i == 0 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Milliseconds with two decimals.
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1_048_576.0)
}

/// A ratio as `1.07×`.
pub fn times(r: f64) -> String {
    format!("{r:.2}×")
}

/// The median of `v` (sorted in place); zero when empty.
pub fn median(v: &mut [std::time::Duration]) -> std::time::Duration {
    percentile(v, 50.0)
}

/// The `p`th percentile of `v` (nearest rank; sorts in place); zero when empty.
pub fn percentile(v: &mut [std::time::Duration], p: f64) -> std::time::Duration {
    if v.is_empty() {
        return std::time::Duration::ZERO;
    }
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn replaces_only_between_its_markers() {
        let doc =
            "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nb\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n";
        let out = replace(doc, "x", "new\n").unwrap();
        assert_eq!(
            out,
            "a\n<!-- bench:x -->\nnew\n<!-- /bench:x -->\nb\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n"
        );
        assert!(replace(doc, "z", "new").is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(median(&mut v), Duration::from_millis(5));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_millis(10));
        assert_eq!(percentile(&mut v, 10.0), Duration::from_millis(1));
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
