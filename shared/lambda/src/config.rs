//! Configuration read once at cold start, from the environment into typed values: a missing
//! or unusable variable fails the function's init by name (and never echoes a secret).
//!
//! [`Env`] reads any variable; [`SendSettings`] is what every function that renders links or
//! runs send steps needs:
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `TOKEN_SECRET` | yes | HMAC key deriving registration tokens, ≥ 32 bytes ([`TokenDeriver`]) |
//! | `UNSUBSCRIBE_SECRET` | no | HMAC key signing unsubscribe links, ≥ 32 bytes: only a process that delivers needs it |
//! | `PUBLIC_URL` | yes | base of the links in emails, `https://host[/path]` (a trailing `/` is dropped; `http://` is refused: the links carry registration and unsubscribe tokens) |
//! | `MAX_SEND_RATE` | no | most sends per second *per process*, a decimal; `0` = unlimited (default 14) |
//! | `FAILURE_THRESHOLD` | no | a campaign pauses after more failed invitations than this (default 100) |
//! | `TOKEN_TTL_DAYS` | no | days a registration link stays valid, 1–365 (default 14) |
//! | `OUTCOME_FLUSH` | no | sends between two outcome writes, ≥ 1 (default [`LAMBDA_OUTCOME_FLUSH`]) |
//! | `PAGE_SIZE` | no | recipients claimed per fan-out step, 1–1000 (default 1000) |
//! | `ACK_GRACE_MINUTES` | no | minutes a resumed delivery waits for SES's Send event of an email its dead holder may have sent, 1–1440 (default 10; see `usecases::send::deliver`) |
//!
//! On Lambda the secrets are not environment variables: each function gets the *name* of an
//! SSM parameter (`TOKEN_SECRET_PARAMETER`, …) and reads the value at cold start
//! ([`crate::secrets`]), then reads these settings through [`crate::secrets::Secrets::lookup`].
//! A secret's value is one key, or during a rotation two keys on separate lines, the new one
//! first ([`keys`]): unsubscribe links signed with either verify, new ones are signed with the
//! new key; registration tokens are derived with the new key (a link's token is found by its
//! hash, so links already sent keep working whatever the key).
//!
//! [`Env::console`] reads the console function's sign-in settings (OpenID Connect
//! authorization code with PKCE at the identity provider behind the API's JWT issuer):
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `CONSOLE_AUTHORIZE_URL` | yes | the provider's authorization endpoint, `https://…` |
//! | `CONSOLE_TOKEN_URL` | yes | its token endpoint, `https://…` (the browser posts the code there) |
//! | `CONSOLE_CLIENT_ID` | yes | the console's public client (no secret) at the provider |
//! | `CONSOLE_SCOPE` | no | scopes to ask for, space-separated (default [`DEFAULT_CONSOLE_SCOPE`]) |
//! | `CONSOLE_SIGN_OUT_URL` | no | where "Sign out" goes after the console forgets its token, `https://…` |
//!
//! [`Env::sweep`] reads the sweeper's setting (the `send` function's scheduled sweep):
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `SWEEP_IDLE_MINUTES` | no | minutes without progress before an unfinished campaign is re-published, 1–1440 (default 10) |
//!
//! An empty optional variable counts as unset (CloudFormation passes empty strings). Errors
//! name the variable and never echo a secret.

use std::sync::Arc;

use portal_core::domain::unsubscribe::{UnsubscribeSigner, MIN_UNSUBSCRIBE_SECRET_LEN};
use portal_core::domain::PublicUrl;
use portal_core::ports::{Clock, Mailer, Store, MAX_ATTEMPT, MAX_FAN_OUT_PAGE};
use portal_core::usecases::send::sweep::SweepConfig;
use portal_core::usecases::send::{
    RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper, MIN_TOKEN_SECRET_LEN,
};
use portal_http::console::{ConsoleConfig, ConsoleConfigError};

/// The variables [`SendSettings::from_env`] requires.
pub const REQUIRED_VARS: &[&str] = &["TOKEN_SECRET", "PUBLIC_URL"];

/// A secret's keys: the current one, and the previous one while a rotation is under way (the
/// value's second line). Blank lines and surrounding spaces are ignored; more than two keys
/// is an error naming the variable (never its value).
pub fn keys(name: &'static str, value: &str) -> Result<(String, Option<String>), SettingsError> {
    let mut lines = value.lines().map(str::trim).filter(|l| !l.is_empty());
    let current = lines.next().ok_or(SettingsError::Missing(name))?.to_owned();
    let previous = lines.next().map(str::to_owned);
    if lines.next().is_some() {
        return Err(SettingsError::TooManyKeys(name));
    }
    Ok((current, previous))
}

/// [`SendConfig::outcome_flush`] on Lambda: [`MAX_ATTEMPT`], the most a DynamoDB transaction
/// holds beside the campaign's counters and the batch's lease.
///
/// A delivery batch carries up to [`MAX_BATCH`](portal_core::usecases::send::MAX_BATCH) recipients; each group's outcomes go in one
/// transaction with the next group's attempting mark, so 98 makes it ~10 transactions per
/// 1,000 invitations. The group size no longer widens the crash window: an email of a group
/// cut short is re-sent only when SES's Send event for it did not arrive within the grace
/// period (see `usecases::send::deliver`).
pub const LAMBDA_OUTCOME_FLUSH: usize = MAX_ATTEMPT;

/// Longest `ACK_GRACE_MINUTES`.
pub const MAX_ACK_GRACE_MINUTES: u32 = 1440;

/// Longest `TOKEN_TTL_DAYS`.
pub const MAX_TOKEN_TTL_DAYS: u32 = 365;

/// The variables [`Env::console`] requires.
pub const CONSOLE_REQUIRED_VARS: &[&str] = &[
    "CONSOLE_AUTHORIZE_URL",
    "CONSOLE_TOKEN_URL",
    "CONSOLE_CLIENT_ID",
];

/// Longest `SWEEP_IDLE_MINUTES`: a day (the DynamoDB watch records outlive their last
/// write by 30 days, so an active campaign's record is always rewritten in time).
pub const MAX_SWEEP_IDLE_MINUTES: i64 = 1440;

/// `CONSOLE_SCOPE` when unset.
pub const DEFAULT_CONSOLE_SCOPE: &str = "openid";

/// The environment, read by name: an empty variable counts as unset.
pub struct Env<F> {
    get: F,
}

impl Env<fn(&str) -> Result<String, std::env::VarError>> {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            get: |name| std::env::var(name),
        }
    }
}

impl<F: Fn(&str) -> Result<String, std::env::VarError>> Env<F> {
    /// Variables looked up through `get` (a map in tests).
    pub fn from_lookup(get: F) -> Self {
        Env { get }
    }

    /// The variable's value; `None` when unset or empty.
    pub fn optional(&self, name: &'static str) -> Result<Option<String>, SettingsError> {
        match (self.get)(name) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SettingsError::NotUnicode(name)),
        }
    }

    /// The variable's value, or [`SettingsError::Missing`] naming it.
    pub fn required(&self, name: &'static str) -> Result<String, SettingsError> {
        self.optional(name)?.ok_or(SettingsError::Missing(name))
    }

    /// `UNSUBSCRIBE_SECRET`: the key that signs and checks one-click unsubscribe links (and
    /// the previous one, during a rotation: see [`keys`]).
    pub fn unsubscribe_signer(&self) -> Result<UnsubscribeSigner, SettingsError> {
        self.optional_unsubscribe_signer()?
            .ok_or(SettingsError::Missing("UNSUBSCRIBE_SECRET"))
    }

    /// [`Env::unsubscribe_signer`] when `UNSUBSCRIBE_SECRET` is set.
    pub fn optional_unsubscribe_signer(&self) -> Result<Option<UnsubscribeSigner>, SettingsError> {
        const NAME: &str = "UNSUBSCRIBE_SECRET";
        let short = |_| SettingsError::ShortSecret {
            name: NAME,
            min: MIN_UNSUBSCRIBE_SECRET_LEN,
        };
        let Some(value) = self.optional(NAME)? else {
            return Ok(None);
        };
        let (current, previous) = keys(NAME, &value)?;
        let signer = UnsubscribeSigner::new(current).map_err(short)?;
        Ok(Some(match previous {
            Some(p) => signer.with_previous(p).map_err(short)?,
            None => signer,
        }))
    }

    /// `PUBLIC_URL`: the base of every link in emails and pages ([`PublicUrl`]'s rule), and
    /// `https://` only: the links carry registration and unsubscribe tokens (only the local
    /// server may use `http://`).
    pub fn public_url(&self) -> Result<PublicUrl, SettingsError> {
        let raw = self.required("PUBLIC_URL")?;
        PublicUrl::parse(&raw)
            .ok()
            .filter(PublicUrl::is_https)
            .ok_or_else(|| invalid("PUBLIC_URL", &raw, PUBLIC_URL_EXPECTED))
    }

    /// The sweeper's configuration: `SWEEP_IDLE_MINUTES` (see the module docs), else
    /// [`SweepConfig::default`].
    pub fn sweep(&self) -> Result<SweepConfig, SettingsError> {
        const NAME: &str = "SWEEP_IDLE_MINUTES";
        const EXPECTED: &str = "a whole number of minutes from 1 to 1440";
        let Some(v) = self.optional(NAME)? else {
            return Ok(SweepConfig::default());
        };
        let minutes: i64 = parse(NAME, &v, EXPECTED)?;
        if !(1..=MAX_SWEEP_IDLE_MINUTES).contains(&minutes) {
            return Err(invalid(NAME, &v, EXPECTED));
        }
        Ok(SweepConfig {
            idle: time::Duration::minutes(minutes),
        })
    }

    /// The console's sign-in settings (see the module docs), or `None` when none of
    /// `CONSOLE_AUTHORIZE_URL`, `CONSOLE_TOKEN_URL` and `CONSOLE_CLIENT_ID` is set (the
    /// console then answers that it is not set up). Every URL must be absolute `https`: on
    /// AWS the page is served over TLS by a function that hosts no provider, so a path on
    /// this server or a plain-http endpoint could only ever fail in the browser.
    pub fn console(&self) -> Result<Option<ConsoleConfig>, SettingsError> {
        let https = |name: &'static str, value: String| -> Result<String, SettingsError> {
            if value.trim().starts_with("https://") {
                Ok(value)
            } else {
                Err(invalid(name, &value, CONSOLE_URL_EXPECTED))
            }
        };
        let names = [
            "CONSOLE_AUTHORIZE_URL",
            "CONSOLE_TOKEN_URL",
            "CONSOLE_CLIENT_ID",
        ];
        let mut set = 0;
        for name in names {
            set += usize::from(self.optional(name)?.is_some());
        }
        if set == 0 {
            return Ok(None);
        }
        let authorize = https(
            "CONSOLE_AUTHORIZE_URL",
            self.required("CONSOLE_AUTHORIZE_URL")?,
        )?;
        let token = https("CONSOLE_TOKEN_URL", self.required("CONSOLE_TOKEN_URL")?)?;
        let client_id = self.required("CONSOLE_CLIENT_ID")?;
        let scope = self
            .optional("CONSOLE_SCOPE")?
            .unwrap_or_else(|| DEFAULT_CONSOLE_SCOPE.to_owned());
        let sign_out = self
            .optional("CONSOLE_SIGN_OUT_URL")?
            .map(|v| https("CONSOLE_SIGN_OUT_URL", v))
            .transpose()?;
        ConsoleConfig::new(&authorize, &token, &client_id, &scope, sign_out.as_deref())
            .map(Some)
            .map_err(|e| match e {
                ConsoleConfigError::Url { var, value } => {
                    invalid(var, &value, CONSOLE_URL_EXPECTED)
                }
                ConsoleConfigError::Empty { var } => SettingsError::Missing(var),
            })
    }
}

/// `TABLE_NAME`: the DynamoDB table every function's store uses.
pub fn table_name() -> Result<String, SettingsError> {
    Env::process().required("TABLE_NAME")
}

/// A setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// The value is deliberately not part of the message.
    #[error(
        "environment variable {name} is too short: a secret of at least {min} bytes is required"
    )]
    ShortSecret { name: &'static str, min: usize },
    /// The value is deliberately not part of the message.
    #[error("{0} holds more than two keys: the current one, and the previous during a rotation")]
    TooManyKeys(&'static str),
    /// The function's secrets could not be read from SSM Parameter Store.
    #[error("the secrets could not be read: {0}")]
    Secrets(String),
    #[error("environment variable {name}={value:?} is not valid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// What a send process is configured with, read once at cold start.
#[derive(Debug, Clone)]
pub struct SendSettings {
    pub tokens: Arc<TokenDeriver>,
    /// `None` in a process that delivers nothing (it is given no unsubscribe secret).
    pub unsubscribe: Option<UnsubscribeSigner>,
    /// Base of the links in emails, no trailing `/`.
    pub public_url: PublicUrl,
    pub config: SendConfig,
}

impl SendSettings {
    /// Reads the settings from the process environment (see the module docs).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name))
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(
        get: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, SettingsError> {
        let env = Env::from_lookup(get);
        let var = |name: &'static str| env.optional(name);
        let required = |name: &'static str| env.required(name);

        // Tokens are derived with the current key; a rotation's previous key is not needed
        // (a presented token is found by its hash).
        let (token_key, _previous) = keys("TOKEN_SECRET", &required("TOKEN_SECRET")?)?;
        let tokens = TokenDeriver::new(token_key).map_err(|_| SettingsError::ShortSecret {
            name: "TOKEN_SECRET",
            min: MIN_TOKEN_SECRET_LEN,
        })?;
        let unsubscribe = env.optional_unsubscribe_signer()?;
        let public_url = env.public_url()?;

        let mut config = SendConfig {
            outcome_flush: LAMBDA_OUTCOME_FLUSH,
            ..SendConfig::default()
        };
        if let Some(v) = var("MAX_SEND_RATE")? {
            let rate = parse::<f64>("MAX_SEND_RATE", &v, "a rate per second ≥ 0 (0 = unlimited)")
                .and_then(|r| {
                if r.is_finite() && r >= 0.0 {
                    Ok(r)
                } else {
                    Err(invalid(
                        "MAX_SEND_RATE",
                        &v,
                        "a rate per second ≥ 0 (0 = unlimited)",
                    ))
                }
            })?;
            config.max_send_rate = (rate > 0.0).then_some(rate);
        }
        if let Some(v) = var("FAILURE_THRESHOLD")? {
            config.failure_threshold = parse(
                "FAILURE_THRESHOLD",
                &v,
                "a whole number of failed invitations",
            )?;
        }
        if let Some(v) = var("TOKEN_TTL_DAYS")? {
            const EXPECTED: &str = "a whole number of days from 1 to 365";
            let days: u32 = parse("TOKEN_TTL_DAYS", &v, EXPECTED)?;
            if !(1..=MAX_TOKEN_TTL_DAYS).contains(&days) {
                return Err(invalid("TOKEN_TTL_DAYS", &v, EXPECTED));
            }
            config.token_ttl = time::Duration::days(i64::from(days));
        }
        if let Some(v) = var("OUTCOME_FLUSH")? {
            const EXPECTED: &str = "a whole number of sends ≥ 1";
            let n: usize = parse("OUTCOME_FLUSH", &v, EXPECTED)?;
            if n == 0 {
                return Err(invalid("OUTCOME_FLUSH", &v, EXPECTED));
            }
            // More than one transaction holds behaves like a full one.
            config.outcome_flush = n.min(MAX_ATTEMPT);
        }
        if let Some(v) = var("ACK_GRACE_MINUTES")? {
            const EXPECTED: &str = "a whole number of minutes from 1 to 1440";
            let n: u32 = parse("ACK_GRACE_MINUTES", &v, EXPECTED)?;
            if n == 0 || n > MAX_ACK_GRACE_MINUTES {
                return Err(invalid("ACK_GRACE_MINUTES", &v, EXPECTED));
            }
            config.ack_grace = time::Duration::minutes(i64::from(n));
        }
        if let Some(v) = var("PAGE_SIZE")? {
            const EXPECTED: &str = "a whole number of recipients from 1 to 1000";
            let n: u32 = parse("PAGE_SIZE", &v, EXPECTED)?;
            if n == 0 || n > MAX_FAN_OUT_PAGE {
                return Err(invalid("PAGE_SIZE", &v, EXPECTED));
            }
            config.page_size = n;
        }

        Ok(Self {
            tokens: Arc::new(tokens),
            unsubscribe,
            public_url,
            config,
        })
    }

    /// The dependencies of [`super::handle`]: these settings, the given adapters, the tokio
    /// timer and a rate limiter at [`SendConfig::max_send_rate`].
    pub fn deps(
        self,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> SendDeps {
        SendDeps {
            store,
            mailer,
            clock,
            sleeper: Arc::new(TokioSleeper),
            unsubscribe: self.unsubscribe.map(Arc::new),
            tokens: self.tokens,
            public_url: self.public_url,
            limiter: Arc::new(RateLimiter::new(self.config.max_send_rate)),
            config: self.config,
        }
    }
}

fn invalid(name: &'static str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError::Invalid {
        name,
        value: value.chars().take(80).collect(),
        expected,
    }
}

fn parse<T: std::str::FromStr>(
    name: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, SettingsError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, value, expected))
}

const PUBLIC_URL_EXPECTED: &str = "an https:// URL without query or fragment";

const CONSOLE_URL_EXPECTED: &str =
    "an https:// URL of the identity provider, without spaces or quotes";

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::env::VarError;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    pub(crate) fn with(vars: &[(&str, &str)]) -> Result<SendSettings, SettingsError> {
        let mut env: HashMap<String, String> = [
            ("TOKEN_SECRET", SECRET),
            ("UNSUBSCRIBE_SECRET", SECRET),
            ("PUBLIC_URL", "https://invite.example.org/"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in vars {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        SendSettings::from_lookup(|name| env.get(name).cloned().ok_or(VarError::NotPresent))
    }

    #[test]
    fn the_sweep_idle_is_whole_minutes_from_one_to_a_day_and_ten_by_default() {
        let sweep = |v: Option<&str>| {
            Env::from_lookup(|name: &str| match (name, v) {
                ("SWEEP_IDLE_MINUTES", Some(v)) => Ok(v.to_owned()),
                _ => Err(VarError::NotPresent),
            })
            .sweep()
        };
        assert_eq!(sweep(None).unwrap().idle, time::Duration::minutes(10));
        assert_eq!(sweep(Some("")).unwrap().idle, time::Duration::minutes(10));
        assert_eq!(sweep(Some("3")).unwrap().idle, time::Duration::minutes(3));
        assert_eq!(sweep(Some("1440")).unwrap().idle, time::Duration::days(1));
        for bad in ["0", "1441", "-5", "2.5", "ten"] {
            let err = sweep(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("SWEEP_IDLE_MINUTES"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_required_variables_alone_give_the_lambda_defaults() {
        let s = with(&[]).unwrap();
        assert_eq!(s.public_url.as_str(), "https://invite.example.org");
        assert_eq!(s.config.outcome_flush, LAMBDA_OUTCOME_FLUSH);
        assert_eq!(s.config.max_send_rate, SendConfig::default().max_send_rate);
        assert_eq!(s.config.token_ttl, time::Duration::days(14));
        assert_eq!(s.config.page_size, 1000);
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in REQUIRED_VARS {
            let err = with(&[(name, "")]).unwrap_err();
            assert_eq!(err, SettingsError::Missing(name));
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn a_short_secret_is_refused_by_name_without_echoing_it() {
        for name in ["TOKEN_SECRET", "UNSUBSCRIBE_SECRET"] {
            let err = with(&[(name, "hunter2-too-short")]).unwrap_err();
            assert_eq!(err, SettingsError::ShortSecret { name, min: 32 });
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_non_unicode_variable_is_named() {
        let err = SendSettings::from_lookup(|name| {
            if name == "TOKEN_SECRET" {
                Err(VarError::NotUnicode(std::ffi::OsString::from("x")))
            } else {
                Ok(SECRET.to_owned())
            }
        })
        .unwrap_err();
        assert_eq!(err, SettingsError::NotUnicode("TOKEN_SECRET"));
    }

    #[test]
    fn a_public_url_must_be_a_plain_https_url() {
        for bad in [
            "http://invite.example.org",
            "HTTP://invite.example.org",
            "http://localhost:3000/portal",
            "invite.example.org",
            "ftp://invite.example.org",
            "https://",
            "https:///path",
            "https://invite.example.org/?x=1",
            "https://invite.example.org/#top",
        ] {
            assert!(
                matches!(
                    with(&[("PUBLIC_URL", bad)]),
                    Err(SettingsError::Invalid {
                        name: "PUBLIC_URL",
                        ..
                    })
                ),
                "{bad} was accepted"
            );
        }
        let s = with(&[("PUBLIC_URL", "https://invite.example.org/portal//")]).unwrap();
        assert_eq!(s.public_url.as_str(), "https://invite.example.org/portal");
        let err = with(&[("PUBLIC_URL", "http://invite.example.org")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn optional_numbers_are_read_and_bad_ones_refused_by_name() {
        let s = with(&[
            ("MAX_SEND_RATE", "2.5"),
            ("FAILURE_THRESHOLD", "7"),
            ("TOKEN_TTL_DAYS", "30"),
            ("OUTCOME_FLUSH", "1"),
            ("PAGE_SIZE", "50"),
        ])
        .unwrap();
        assert_eq!(s.config.max_send_rate, Some(2.5));
        assert_eq!(s.config.failure_threshold, 7);
        assert_eq!(s.config.token_ttl, time::Duration::days(30));
        assert_eq!(s.config.outcome_flush, 1);
        assert_eq!(s.config.page_size, 50);
        assert_eq!(
            with(&[("MAX_SEND_RATE", "0")])
                .unwrap()
                .config
                .max_send_rate,
            None,
            "0 is unlimited"
        );
        assert_eq!(
            with(&[("OUTCOME_FLUSH", "1000")])
                .unwrap()
                .config
                .outcome_flush,
            MAX_ATTEMPT
        );
        assert_eq!(
            with(&[("ACK_GRACE_MINUTES", "3")])
                .unwrap()
                .config
                .ack_grace,
            time::Duration::minutes(3)
        );

        for (name, bad) in [
            ("MAX_SEND_RATE", "fast"),
            ("MAX_SEND_RATE", "-1"),
            ("MAX_SEND_RATE", "inf"),
            ("MAX_SEND_RATE", "NaN"),
            ("FAILURE_THRESHOLD", "-3"),
            ("TOKEN_TTL_DAYS", "0"),
            ("TOKEN_TTL_DAYS", "366"),
            ("TOKEN_TTL_DAYS", "1.5"),
            ("OUTCOME_FLUSH", "0"),
            ("PAGE_SIZE", "0"),
            ("PAGE_SIZE", "1001"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err();
            assert!(
                matches!(&err, SettingsError::Invalid { name: n, value, .. } if *n == name && value == bad),
                "{name}={bad}: {err:?}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    fn console_with(vars: &[(&str, &str)]) -> Result<ConsoleConfig, SettingsError> {
        let mut env: HashMap<String, String> = [
            (
                "CONSOLE_AUTHORIZE_URL",
                "https://managers.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
            ),
            (
                "CONSOLE_TOKEN_URL",
                "https://managers.auth.eu-west-1.amazoncognito.com/oauth2/token",
            ),
            ("CONSOLE_CLIENT_ID", "4example0client0id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        Env::from_lookup(|name| env.get(name).cloned().ok_or(VarError::NotPresent))
            .console()?
            .ok_or(SettingsError::Missing("CONSOLE_*"))
    }

    #[test]
    fn without_any_console_setting_there_is_no_console() {
        let none = Env::from_lookup(|_| Err(VarError::NotPresent)).console();
        assert_eq!(none, Ok(None));
        let blank = Env::from_lookup(|name| {
            if name.starts_with("CONSOLE_") {
                Ok(String::new())
            } else {
                Err(VarError::NotPresent)
            }
        })
        .console();
        assert_eq!(blank, Ok(None));
    }

    #[test]
    fn the_console_settings_are_read_with_the_default_scope_and_no_sign_out() {
        let c = console_with(&[("CONSOLE_SCOPE", ""), ("CONSOLE_SIGN_OUT_URL", "")]).unwrap();
        assert_eq!(
            c.token_url,
            "https://managers.auth.eu-west-1.amazoncognito.com/oauth2/token"
        );
        assert_eq!(c.client_id, "4example0client0id");
        assert_eq!(c.scope, DEFAULT_CONSOLE_SCOPE);
        assert_eq!(c.sign_out_url, None);

        let c = console_with(&[
            ("CONSOLE_SCOPE", "openid email"),
            (
                "CONSOLE_SIGN_OUT_URL",
                "https://managers.auth.eu-west-1.amazoncognito.com/logout?client_id=4example0client0id",
            ),
        ])
        .unwrap();
        assert_eq!(c.scope, "openid email");
        assert!(c.sign_out_url.is_some());
    }

    #[test]
    fn each_missing_console_variable_is_named() {
        for name in CONSOLE_REQUIRED_VARS {
            assert_eq!(
                console_with(&[(name, " ")]).unwrap_err(),
                SettingsError::Missing(name)
            );
        }
    }

    #[test]
    fn console_urls_must_be_absolute_https_urls() {
        for name in [
            "CONSOLE_AUTHORIZE_URL",
            "CONSOLE_TOKEN_URL",
            "CONSOLE_SIGN_OUT_URL",
        ] {
            for bad in [
                "/local-idp/token",
                "http://auth.example.com/oauth2/token",
                "auth.example.com/oauth2/token",
                "https://",
                "https://auth.example.com/\"x",
            ] {
                let err = console_with(&[(name, bad)]).unwrap_err();
                assert!(
                    matches!(&err, SettingsError::Invalid { name: n, .. } if *n == name),
                    "{name}={bad}: {err:?}"
                );
                assert!(err.to_string().contains(name), "{err}");
            }
        }
    }

    #[test]
    fn deps_carry_the_settings_and_a_limiter_at_the_rate() {
        let s = with(&[("MAX_SEND_RATE", "4")]).unwrap();
        let store = Arc::new(portal_embedded::sqlite::SqliteStore::open_in_memory().unwrap());
        // Never written to: nothing is sent here.
        let mailer = Arc::new(portal_embedded::outbox::Outbox::in_data_dir(
            std::path::Path::new("/nonexistent"),
        ));
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let deps = s.deps(
            store,
            mailer,
            Arc::new(portal_core::ports::FixedClock::new(now)),
        );
        assert_eq!(deps.public_url.as_str(), "https://invite.example.org");
        assert_eq!(deps.config.outcome_flush, LAMBDA_OUTCOME_FLUSH);
        assert_eq!(deps.limiter.reserve(now), std::time::Duration::ZERO);
        assert_eq!(
            deps.limiter.reserve(now),
            std::time::Duration::from_millis(250)
        );
    }
}
