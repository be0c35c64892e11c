//! Where sessions of one user mapping share their access token, so that
//! several processes log in once, and once again when it expires, not once
//! each.

use super::auth::Token;

/// What the shelf holds for a session that needs a token.
pub enum Shelved {
    /// A token another session obtained.
    Token(Token),
    /// None usable: this session logs in and `put`s the result (or
    /// `release`s the claim if the login failed).
    LogIn,
    /// Another session is logging in now: ask again shortly.
    Wait,
}

pub trait TokenShelf: Send {
    /// A token other than `rejected` (one Salesforce just refused), else a
    /// claim to log in, held for `claim_for`, else Wait.
    fn look(&self, rejected: Option<&str>, claim_for: std::time::Duration) -> Shelved;
    /// Shares the token of a fresh login and drops the claim.
    fn put(&self, token: &Token);
    /// Drops this session's claim after a failed login.
    fn release(&self);
}
