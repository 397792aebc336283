//! Use cases: what a caller can do, written once against the ports and driven by the HTTP
//! router, the Lambda functions and the local server alike.

pub mod campaigns;
pub mod counts;
pub mod events;
pub mod recurring;
pub mod registration;
pub mod send;
pub mod sync;

use crate::domain::DomainError;
use crate::ports::StoreError;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// Bad input: a 422.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// A named thing does not exist for this tenant: a 404 (another tenant's records look
    /// exactly like missing ones).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A cursor that this query did not make: a 400.
    #[error("{0}")]
    BadCursor(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UseCaseError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor(m) => UseCaseError::BadCursor(m),
            other => UseCaseError::Store(other),
        }
    }
}
