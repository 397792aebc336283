//! Logging set-up shared by the Lambda functions: one JSON object per line on stdout (what
//! CloudWatch Logs and Logs Insights read), level from `RUST_LOG`, no timestamps (Lambda
//! stamps each line) and no span nesting.
//!
//! `RUST_LOG` is read as [`Targets`]: a level (`info`, what `template.yaml`'s `LogLevel`
//! allows: `error` to `trace`) and `target=level` directives, comma-separated
//! (`warn,portal_aws=debug`). Not as `EnvFilter`: it also takes span and field directives
//! (`[span{field=value}]`), whose values may be regular expressions, so it links the regex
//! engine and its Unicode tables, ~0.8 MB of each bootstrap (0.25 MB zipped) for a syntax
//! no function is configured with (README "Lambda packages").

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber; call once, first thing in a function's `main`.
pub fn init_lambda_logging() {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time(),
        )
        .with(filter)
        .init();
}

/// The filter `RUST_LOG` asks for, read as `EnvFilter::from_default_env` read it: a directive
/// that does not parse is skipped, and without any (unset, empty, all invalid) only errors
/// are logged.
fn filter_from(rust_log: Option<&str>) -> Targets {
    let directives: Vec<Targets> = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| d.parse::<Targets>().ok())
        .collect();
    if directives.is_empty() {
        return Targets::new().with_default(LevelFilter::ERROR);
    }
    directives.into_iter().fold(Targets::new(), |all, one| {
        let all = match one.default_level() {
            Some(level) => all.with_default(level),
            None => all,
        };
        all.with_targets(one)
    })
}

#[cfg(test)]
mod tests {
    use super::filter_from;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn a_level_applies_to_every_target() {
        let f = filter_from(Some("info"));
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
        assert!(f.would_enable("portal_aws::dynamodb", &Level::INFO));
        assert!(!f.would_enable("portal_aws::dynamodb", &Level::DEBUG));
    }

    #[test]
    fn target_directives_refine_the_default() {
        let f = filter_from(Some("warn, portal_aws=debug"));
        assert!(f.would_enable("portal_aws::dynamodb", &Level::DEBUG));
        assert!(!f.would_enable("portal_aws::dynamodb", &Level::TRACE));
        assert!(f.would_enable("hyper", &Level::WARN));
        assert!(!f.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn unset_empty_or_invalid_logs_errors_only() {
        for value in [
            None,
            Some(""),
            Some(" , "),
            Some("portal=shout"),
            Some("a=b=c"),
        ] {
            let f = filter_from(value);
            assert!(f.would_enable("portal_core", &Level::ERROR), "{value:?}");
            assert!(!f.would_enable("portal_core", &Level::WARN), "{value:?}");
        }
    }

    #[test]
    fn an_invalid_directive_is_skipped_not_the_others() {
        let f = filter_from(Some("portal=shout,debug"));
        assert_eq!(f.default_level(), Some(LevelFilter::DEBUG));
    }
}
