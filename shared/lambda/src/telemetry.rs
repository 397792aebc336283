//! Logging set-up shared by the Lambda functions: one JSON object per line on stdout (what
//! CloudWatch Logs and Logs Insights read), level from `RUST_LOG`, no timestamps (Lambda
//! stamps each line) and no span nesting.

/// Installs the JSON subscriber; call once, first thing in a function's `main`.
pub fn init_lambda_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();
}
