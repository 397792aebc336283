//! The secrets a function read at cold start (from SSM Parameter Store, see
//! `portal_aws::secrets`), looked up like environment variables.

use std::collections::HashMap;

/// Every secret a function may be given: each as `{name}_PARAMETER`, the name of the SSM
/// `SecureString` parameter holding it.
pub const SECRET_VARS: &[&str] = &["TOKEN_SECRET", "UNSUBSCRIBE_SECRET", "RAW_EVENTS_SECRET"];

/// Secrets by variable name; every other name falls through to the process environment.
#[derive(Default)]
pub struct Secrets {
    values: HashMap<&'static str, String>,
}

impl std::fmt::Debug for Secrets {
    // Names only, never values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.values.keys().copied().collect();
        names.sort_unstable();
        f.debug_struct("Secrets").field("names", &names).finish()
    }
}

impl Secrets {
    pub fn new(values: HashMap<&'static str, String>) -> Self {
        Self { values }
    }

    /// What every function with secrets does at cold start: the answer of reading them
    /// (`portal_aws::secrets::resolve_from_env` over [`SECRET_VARS`]), or a
    /// [`SettingsError::Secrets`] that stops the function.
    pub fn from_resolved<E: std::fmt::Display>(
        resolved: Result<HashMap<&'static str, String>, E>,
    ) -> Result<Self, crate::SettingsError> {
        resolved
            .map(Self::new)
            .map_err(|e| crate::SettingsError::Secrets(e.to_string()))
    }

    /// A lookup for [`crate::SendSettings::from_lookup`] and [`crate::Env::from_lookup`]: a
    /// secret read at cold start, else the environment variable.
    pub fn lookup(&self) -> impl Fn(&str) -> Result<String, std::env::VarError> + '_ {
        move |name| match self.values.get(name) {
            Some(v) => Ok(v.clone()),
            None => std::env::var(name),
        }
    }

    /// The secret, if it was read.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_read_at_cold_start_is_found_by_its_variable_name_and_never_printed() {
        let s = Secrets::new(HashMap::from([("TOKEN_SECRET", "s3cr3t-value".to_owned())]));
        assert_eq!(s.lookup()("TOKEN_SECRET").unwrap(), "s3cr3t-value");
        assert_eq!(s.get("TOKEN_SECRET"), Some("s3cr3t-value"));
        assert_eq!(s.get("UNSUBSCRIBE_SECRET"), None);
        assert!(s.lookup()("PORTAL_TEST_SURELY_UNSET_VARIABLE").is_err());
        let printed = format!("{s:?}");
        assert!(printed.contains("TOKEN_SECRET") && !printed.contains("s3cr3t"));
    }

    #[test]
    fn a_failed_read_stops_the_function_with_its_reason() {
        let err = Secrets::from_resolved::<&str>(Err("SSM parameters not found: /x")).unwrap_err();
        assert_eq!(
            err,
            crate::SettingsError::Secrets("SSM parameters not found: /x".into())
        );
        let ok = Secrets::from_resolved::<&str>(Ok(HashMap::from([("TOKEN_SECRET", "v".into())])))
            .unwrap();
        assert_eq!(ok.get("TOKEN_SECRET"), Some("v"));
    }
}
