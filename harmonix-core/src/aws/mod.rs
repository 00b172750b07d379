//! AWS client configuration and the role chain.
//!
//! A pipeline job runs with base credentials from the standard AWS chain
//! (environment, profile, web identity, container or instance role). To
//! deploy an environment, [`ClientPool::clients`] assumes, with
//! `sts:AssumeRole`, an optional intermediate [`AwsOptions::pipeline_role`]
//! and then the environment's `environmentRole` in the target account, and
//! hands back [`Clients`] acting as that role in the target region.
//!
//! - Credentials are cached per account, region and role chain and assumed
//!   again [`REFRESH_BEFORE_EXPIRY`] before they expire, inside a
//!   [`RoleChainProvider`] the SDK clients call for every request: applies
//!   longer than the one-hour cap of chained roles keep working.
//! - Role session names are `harmonix-<caller>-<environment>` (see
//!   [`session_name`]).
//! - The endpoint override ([`AwsOptions::endpoint_url`] or the standard
//!   `AWS_ENDPOINT_URL`) and the target region apply to every client, STS
//!   included.
//! - Every request towards an account/region draws from one token bucket
//!   ([`ApiBudget`], [`AwsOptions::api_budget`]), retries included, and is
//!   counted by operation ([`ClientPool::request_counts`]).
//! - No type here shows a secret in `Debug`; errors name roles and steps,
//!   never credentials.

mod budget;
mod chain;
mod error;
mod options;
mod pool;
mod session;

pub use budget::{ApiBudget, Bucket};
pub use chain::{REFRESH_BEFORE_EXPIRY, RoleChainProvider};
pub use error::{AwsError, RoleStep};
pub use options::{
    AwsOptions, CHAINED_ROLE_MAX_DURATION, MAX_SESSION_DURATION, MIN_SESSION_DURATION,
    SessionOptions,
};
pub use pool::{ClientPool, Clients, Target};
pub use session::{MAX_SESSION_NAME_LEN, session_name};

#[cfg(test)]
mod tests;
