//! Pure business rules: given a state, an input and `now`, what changes. No I/O, no clock, no RNG.

pub mod boards;
pub mod checkin;
pub mod contests;
pub mod draws;
mod error;
pub mod home;
pub mod ids;
pub mod ledger;
pub mod members;
pub mod referrals;
pub mod tiers;

pub use error::DomainError;
pub use ids::UserId;
