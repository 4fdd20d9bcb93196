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
    /// No such campaign, contest, draw…
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A check-in outside the campaign's start and end dates.
    #[error("the campaign is not running today")]
    CampaignNotActive,
    /// A make-up of a date that is already checked in.
    #[error("that date is not missed")]
    NotMissed,
    /// A make-up over the monthly limit.
    #[error("no make-ups left this month (limit {per_month})")]
    MakeupLimitReached { per_month: u32 },
    /// A make-up of a date outside [today - look-back, today - 1].
    #[error("only the last {lookback_days} days before today can be made up")]
    OutsideMakeupWindow { lookback_days: u32 },
    /// A capture or release of a hold that is not open (captured, released, or timed out).
    #[error("the hold is not active")]
    HoldNotActive,
    /// An idempotency key sent again with a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// A reversal of a grant that has nothing left to take back.
    #[error("the grant is already fully reversed")]
    GrantFullyReversed,
    /// Too many open holds on one account.
    #[error("at most {max} holds may be open at once")]
    HoldLimitReached { max: usize },
    /// A display name an admin reserved (or "anonymous").
    #[error("that display name is reserved")]
    ReservedName,
    /// A contest would make more contests run at once (or be listed) than the earn path carries.
    #[error("at most {max_active} contests may run at once and {max_listed} be scheduled")]
    TooManyContests { max_active: usize, max_listed: usize },
    /// Joining, leaving or forming a team when the contest no longer allows it.
    #[error("{0}")]
    ContestClosed(&'static str),
    /// A contest that has started cannot be cancelled.
    #[error("the contest has started")]
    ContestStarted,
    /// A team with no seat left.
    #[error("the team is full ({max} members)")]
    TeamFull { max: u32 },
    /// A member already in a team of this contest (one team per member per contest).
    #[error("already in a team of this contest")]
    AlreadyInTeam,
    /// A fulfilment marked shipped a second time.
    #[error("already marked shipped")]
    AlreadyShipped,
    /// A referral claim the rules refuse (`domain::referrals::check_claim`).
    #[error("{}", referral_refusal(*.0))]
    Referral(super::referrals::Refusal),
    /// A referral revoked a second time (it was reversed once, at the first revoke).
    #[error("the referral is revoked already")]
    ReferralRevoked,
    /// A spin or a share outside the draw's start and end.
    #[error("the draw is not open")]
    DrawNotOpen,
    /// A spin over the member's daily or total limit.
    #[error("no spins left: the {which} limit is {limit}")]
    DrawLimit { which: &'static str, limit: u32 },
    /// A share when the draw gives no share bonus.
    #[error("this draw gives no spins for sharing")]
    DrawSharesOff,
    /// A second share the same day.
    #[error("the share bonus was given today already")]
    AlreadySharedToday,
    /// More draws would be open (or scheduled) at once than the home index lists.
    #[error("at most {max} draws may be open or scheduled at once")]
    TooManyDraws { max: usize },
    /// The seed and stock-out times before the draw's end.
    #[error("the draw has not ended")]
    DrawNotEnded,
    /// A coupon code uploaded for another draw or prize.
    #[error("a code is taken by another draw or prize: {0}")]
    CouponCodeTaken(String),
    /// A coupon redeemed a second time.
    #[error("the coupon is redeemed already")]
    CouponRedeemed,
    /// A coupon nobody won yet cannot be redeemed.
    #[error("the coupon has not been won")]
    CouponNotWon,
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

fn referral_refusal(refusal: super::referrals::Refusal) -> &'static str {
    use super::referrals::Refusal;
    match refusal {
        Refusal::ProgramOff => "the referral program is off",
        Refusal::OwnCode => "that is your own code",
        Refusal::AlreadyReferred => "you were referred already (the first code stays)",
        Refusal::WindowPassed => "codes can be claimed only in the first days after joining",
        Refusal::Cycle => "members who have invited someone cannot claim a code",
    }
}
