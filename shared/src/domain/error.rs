/// A rule refused an operation. Each variant maps to one HTTP status and one stable problem `type`
/// in [`crate::http`]; nothing has been written when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A debit larger than the spendable balance.
    #[error("not enough points: balance {balance}, needed {needed}")]
    InsufficientPoints { balance: i64, needed: i64 },
    /// A value that is well-formed but not acceptable (bad date, amount out of range, bad config).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Integer arithmetic would overflow: the operation is refused rather than wrapped.
    #[error("amount would overflow")]
    Overflow,
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
