//! The functions' secrets, read once at cold start from SSM Parameter Store.
//!
//! A secret is a `SecureString` parameter the operator puts there (CloudFormation cannot
//! create one): the stack passes each function only the *names* of the parameters it uses,
//! and its role may read only those. The value is never in the function's configuration,
//! so `lambda:GetFunctionConfiguration` does not reveal it.
//!
//! A value holds one key, or two during a rotation: the new one first, then the previous
//! one, on separate lines (see `portal_lambda::config`).

use std::collections::HashMap;

use aws_sdk_ssm::Client;

/// Most names one `GetParameters` call takes.
const MAX_NAMES_PER_CALL: usize = 10;

/// Why the secrets could not be read: the function must not start.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Parameters that do not exist (or the role may not read).
    #[error("SSM parameters not found: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("reading SSM parameters failed")]
    Ssm(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The values of the parameters `names`, decrypted, by name. Fails naming every parameter
/// that is missing; never includes a value in an error.
pub async fn read_parameters(
    client: &Client,
    names: &[String],
) -> Result<HashMap<String, String>, SecretsError> {
    let mut values = HashMap::with_capacity(names.len());
    let mut missing = Vec::new();
    for chunk in names.chunks(MAX_NAMES_PER_CALL) {
        let out = client
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| SecretsError::Ssm(Box::new(e)))?;
        missing.extend(out.invalid_parameters().iter().cloned());
        for p in out.parameters() {
            if let (Some(name), Some(value)) = (p.name(), p.value()) {
                values.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    let unanswered: Vec<String> = names
        .iter()
        .filter(|n| !values.contains_key(*n) && !missing.contains(n))
        .cloned()
        .collect();
    missing.extend(unanswered);
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(SecretsError::Missing(missing));
    }
    Ok(values)
}

/// The suffix of the variable naming a secret's parameter: `TOKEN_SECRET_PARAMETER` names
/// the parameter holding `TOKEN_SECRET`.
pub const PARAMETER_SUFFIX: &str = "_PARAMETER";

/// For each of `secrets` whose `{secret}_PARAMETER` variable `var` finds (set, not blank),
/// the value of that parameter, in one `GetParameters` call per ten. A secret without such a
/// variable is simply absent from the answer.
pub async fn resolve(
    client: &Client,
    var: impl Fn(&str) -> Option<String>,
    secrets: &[&'static str],
) -> Result<HashMap<&'static str, String>, SecretsError> {
    let named: Vec<(&'static str, String)> = secrets
        .iter()
        .filter_map(|s| {
            var(&format!("{s}{PARAMETER_SUFFIX}"))
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .map(|n| (*s, n))
        })
        .collect();
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<String> = named.iter().map(|(_, n)| n.clone()).collect();
    let mut values = read_parameters(client, &names).await?;
    Ok(named
        .into_iter()
        .filter_map(|(secret, name)| values.remove(&name).map(|v| (secret, v)))
        .collect())
}

/// [`resolve`] for a Lambda function at cold start: the process environment names the
/// parameters, read with `aws`'s credentials and region.
pub async fn resolve_from_env(
    client: &Client,
    secrets: &[&'static str],
) -> Result<HashMap<&'static str, String>, SecretsError> {
    resolve(client, |name| std::env::var(name).ok(), secrets).await
}
