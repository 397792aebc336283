//! What Lambda records for an invocation a function could not take: a stable error type and
//! the error's whole cause chain.

use lambda_runtime::Diagnostic;

/// A [`Diagnostic`] of `error_type` with `e`'s message and every cause, `: `-separated.
pub fn diagnostic(error_type: &str, e: &(dyn std::error::Error + 'static)) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: portal_core::error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_diagnostic_keeps_every_cause() {
        let e = Outer(std::io::Error::other("disk on fire"));
        let d = diagnostic("StoreError", &e);
        assert_eq!(d.error_type, "StoreError");
        assert_eq!(d.error_message, "outer: disk on fire");
    }
}
