//! Configuration read once from the environment at cold start.

use chrono_tz::Tz;

/// The default business zone: days, months and weeks outside check-in campaigns are local to it.
pub const DEFAULT_BUSINESS_ZONE: Tz = chrono_tz::Asia::Shanghai;

#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `BUSINESS_TIME_ZONE`: IANA zone for expiry, monthly caps, daily limits and board periods.
    pub business_zone: Tz,
    /// `CAMPAIGN_DEV_CLOCK=1`: honour the `x-debug-now` header. Local development only; the SAM
    /// template never sets it.
    pub dev_clock: bool,
    /// `POINTS_VALIDITY_MONTHS`: points earned in month M are valid through month M + this (12).
    pub validity_months: u32,
    /// `HOLD_MINUTES`: a hold not captured within this time is released (30).
    pub hold_minutes: u32,
    /// `PURCHASE_RATE_BPS`: points per yuan of an order, in basis points (10000 = 1 point per
    /// yuan); the result is rounded down.
    pub purchase_rate_bps: u32,
    /// `CONFIG_CACHE_SECONDS`: how long a warm function reuses configuration it read (30; 0 = none).
    pub config_cache_seconds: u32,
    /// `REQUEST_DEADLINE_MS`: every DynamoDB call of one request (reads, lookups, retried
    /// transactions) ends within this time, else the request answers 503 (default 10 000; the
    /// template's Lambda timeout is 20 s, and a Lambda's own remaining time is honoured too).
    pub request_deadline_ms: u32,
    /// `METRICS_STACK`: write business metrics (EMF lines on stdout) with this value of the
    /// `Stack` dimension. The template sets the stack's name; unset (local runs, tests) = none.
    pub metrics_stack: Option<String>,
}

/// The default of `REQUEST_DEADLINE_MS`.
pub const DEFAULT_REQUEST_DEADLINE_MS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table_name = get("TABLE_NAME")
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let business_zone = match get("BUSINESS_TIME_ZONE").filter(|z| !z.is_empty()) {
            None => DEFAULT_BUSINESS_ZONE,
            Some(zone) => zone.parse().map_err(|_| ConfigError::Invalid {
                name: "BUSINESS_TIME_ZONE",
                reason: format!("{zone:?} is not an IANA time zone"),
            })?,
        };
        let dev_clock = matches!(get("CAMPAIGN_DEV_CLOCK").as_deref(), Some("1" | "true"));
        let number = |name: &'static str, default: u32, range: std::ops::RangeInclusive<u32>| match get(name)
        {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError::Invalid {
                    name,
                    reason: format!("{raw:?} is not a whole number in {range:?}"),
                }),
        };
        Ok(Self {
            table_name,
            business_zone,
            dev_clock,
            validity_months: number("POINTS_VALIDITY_MONTHS", 12, 1..=120)?,
            hold_minutes: number("HOLD_MINUTES", 30, 1..=10_080)?,
            purchase_rate_bps: number("PURCHASE_RATE_BPS", 10_000, 0..=1_000_000)?,
            config_cache_seconds: number("CONFIG_CACHE_SECONDS", 30, 0..=3_600)?,
            request_deadline_ms: number("REQUEST_DEADLINE_MS", DEFAULT_REQUEST_DEADLINE_MS, 100..=60_000)?,
            metrics_stack: get("METRICS_STACK").filter(|s| !s.is_empty()),
        })
    }

    pub fn ledger_rules(&self) -> crate::domain::ledger::LedgerRules {
        crate::domain::ledger::LedgerRules {
            zone: self.business_zone,
            validity_months: self.validity_months,
            hold_minutes: self.hold_minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = from(&[("TABLE_NAME", "t1")]).unwrap();
        assert_eq!(c.business_zone, chrono_tz::Asia::Shanghai);
        assert!(!c.dev_clock);
        let c = from(&[
            ("TABLE_NAME", "t1"),
            ("BUSINESS_TIME_ZONE", "Europe/Berlin"),
            ("CAMPAIGN_DEV_CLOCK", "1"),
        ])
        .unwrap();
        assert_eq!(c.business_zone, chrono_tz::Europe::Berlin);
        assert!(c.dev_clock);
    }

    #[test]
    fn refuses_missing_table_and_bad_zone() {
        assert!(matches!(from(&[]), Err(ConfigError::Missing("TABLE_NAME"))));
        assert!(matches!(
            from(&[("TABLE_NAME", "t"), ("BUSINESS_TIME_ZONE", "Mars/Olympus")]),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
