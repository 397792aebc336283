//! Which URLs SNS messages may make us request.
//!
//! Both the signing certificate and the subscription confirmation come from the SNS endpoint of
//! a region: `https://sns.<region>.amazonaws.com/` (or `.amazonaws.com.cn` for the `cn-`
//! regions), default port, no user info. URLs are parsed (and so normalized: the host
//! lowercased, `:443` dropped) before the rule is applied, and the parsed URL is what gets
//! requested, so the checked host and the contacted host cannot differ. A certificate URL must
//! further be a single path segment `SimpleNotificationService-<name>.pem`, with no query or
//! fragment; that segment is also the file name looked up in the certificate directory.
//!
//! [`SnsRegions`] narrows the rule to the deployment's own region(s): SNS signs a topic's
//! messages with the certificate of the topic's region, so a deployment never needs another
//! region's host, and a forged message naming one makes no request.

use url::{Host, Url};

use super::{quote, SnsError};

/// Longest region name accepted (the longest today, `ap-southeast-5`, is 14).
const MAX_REGION_LEN: usize = 32;

/// The regions whose SNS hosts we may request (certificates, subscription confirmations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SnsRegions {
    /// Any region (the library's default; the local server without a configured region).
    #[default]
    Any,
    /// Only these (the Lambda function: its own `AWS_REGION` unless configured).
    Only(std::collections::BTreeSet<String>),
}

impl SnsRegions {
    /// A comma-separated list of region names (`eu-west-1,eu-central-1`); each must be a
    /// region name, and at least one is needed.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut regions = std::collections::BTreeSet::new();
        for region in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !is_region(region) {
                return Err(format!("{:?} is not a region name", quote(region)));
            }
            regions.insert(region.to_owned());
        }
        if regions.is_empty() {
            return Err("no region given".into());
        }
        Ok(Self::Only(regions))
    }

    /// Whether the SNS host of `region` may be requested.
    pub fn allows(&self, region: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(regions) => regions.contains(region),
        }
    }
}

impl std::fmt::Display for SnsRegions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any region"),
            Self::Only(r) => f.write_str(&r.iter().cloned().collect::<Vec<_>>().join(",")),
        }
    }
}

/// A signing certificate URL that passed [`check_cert_url`]: the only kind a
/// [`super::CertStore`] looks up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertUrl(Url);

impl CertUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The region of its SNS host.
    pub fn region(&self) -> &str {
        region_of(&self.0).unwrap_or_default()
    }

    /// `SimpleNotificationService-<name>.pem`: safe as a file name (checked characters, no
    /// separator).
    pub fn file_name(&self) -> &str {
        self.0.path().trim_start_matches('/')
    }
}

/// Checks a `SigningCertURL` (see the module docs for the rule).
pub fn check_cert_url(raw: &str) -> Result<CertUrl, SnsError> {
    let bad = |reason| SnsError::BadCertUrl {
        url: quote(raw),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    check_sns_origin(&url).map_err(bad)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let name = url.path().strip_prefix('/').unwrap_or_default();
    if !is_cert_file_name(name) {
        return Err(bad("path is not /SimpleNotificationService-<name>.pem"));
    }
    Ok(CertUrl(url))
}

/// Checks a `SubscribeURL`: an SNS host as for certificates; any path and query (SNS puts the
/// `ConfirmSubscription` action and token in the query).
pub fn check_subscribe_url(raw: &str) -> Result<Url, SnsError> {
    let bad = |reason| SnsError::BadSubscribeUrl {
        url: quote(raw),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    check_sns_origin(&url).map_err(bad)?;
    Ok(url)
}

/// `https`, no user info, default port, host `sns.<region>.amazonaws.com[.cn]`.
fn check_sns_origin(url: &Url) -> Result<(), &'static str> {
    if url.scheme() != "https" {
        return Err("not https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("has user info");
    }
    // `Url` reports no port when the URL's port is the scheme's default (443 here).
    if url.port().is_some() {
        return Err("has a port other than 443");
    }
    match url.host() {
        Some(Host::Domain(host)) if is_sns_host(host) => Ok(()),
        Some(Host::Domain(_)) => Err("host is not sns.<region>.amazonaws.com[.cn]"),
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => Err("host is an IP address"),
        None => Err("no host"),
    }
}

/// The region of a checked SNS URL's host (`None` for any other URL).
pub fn region_of(url: &Url) -> Option<&str> {
    let host = match url.host()? {
        Host::Domain(host) if is_sns_host(host) => host,
        _ => return None,
    };
    let rest = host.strip_prefix("sns.")?;
    rest.strip_suffix(".amazonaws.com.cn")
        .or_else(|| rest.strip_suffix(".amazonaws.com"))
}

/// `sns.<region>.amazonaws.com`, or `sns.cn-<…>.amazonaws.com.cn` for the China regions.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    if let Some(region) = rest.strip_suffix(".amazonaws.com.cn") {
        region.starts_with("cn-") && is_region(region)
    } else if let Some(region) = rest.strip_suffix(".amazonaws.com") {
        !region.starts_with("cn-") && is_region(region)
    } else {
        false
    }
}

/// A region name: hyphen-separated lowercase words ending in a number, at least three parts
/// (`us-east-1`, `cn-north-1`, `us-gov-west-1`).
fn is_region(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_REGION_LEN {
        return false;
    }
    let parts: Vec<&str> = s.split('-').collect();
    let Some((last, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// `SimpleNotificationService-<name>.pem` with `<name>` of ASCII letters, digits, `-`, `_`.
fn is_cert_file_name(name: &str) -> bool {
    name.strip_prefix("SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"))
        .is_some_and(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_of_every_partition_are_accepted() {
        for host in [
            "sns.us-east-1.amazonaws.com",
            "sns.eu-central-1.amazonaws.com",
            "sns.ap-southeast-2.amazonaws.com",
            "sns.us-gov-west-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
            "sns.cn-northwest-1.amazonaws.com.cn",
        ] {
            assert!(is_sns_host(host), "{host}");
        }
    }

    #[test]
    fn look_alike_hosts_are_refused() {
        for host in [
            "sns.evil.com",
            "sns.us-east-1.amazonaws.com.evil.com",
            "evil.sns.us-east-1.amazonaws.com",
            "sns.amazonaws.com",
            "sns..amazonaws.com",
            "sns.us-east.amazonaws.com",
            "sns.us-east-1-.amazonaws.com",
            "sns.-us-east-1.amazonaws.com",
            "sns.us--east-1.amazonaws.com",
            "sns.us_east-1.amazonaws.com",
            "sns.us.east.1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com",
            "sns.us-east-1.amazonaws.com.cn",
            "sqs.us-east-1.amazonaws.com",
            "sns.us-east-1.amazonaws.co",
        ] {
            assert!(!is_sns_host(host), "{host}");
        }
    }

    #[test]
    fn region_lists_are_region_names_and_say_which_hosts_may_be_asked() {
        let only = SnsRegions::parse_list(" eu-west-1, us-gov-west-1 ,").unwrap();
        assert!(only.allows("eu-west-1") && only.allows("us-gov-west-1"));
        assert!(!only.allows("us-east-1"));
        assert!(SnsRegions::Any.allows("ap-south-2"));
        for bad in ["", " , ", "eu-west", "EU-WEST-1", "eu-west-1,evil.com"] {
            assert!(SnsRegions::parse_list(bad).is_err(), "{bad:?}");
        }
        let url = check_cert_url(
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a.pem",
        )
        .unwrap();
        assert_eq!(url.region(), "cn-north-1");
    }

    #[test]
    fn certificate_file_names_are_one_safe_segment() {
        assert!(is_cert_file_name(
            "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
        ));
        for name in [
            "SimpleNotificationService-.pem",
            "SimpleNotificationService-a/b.pem",
            "SimpleNotificationService-a%2Fb.pem",
            "SimpleNotificationService-..pem",
            "SimpleNotificationService-abc.pem.exe",
            "simplenotificationservice-abc.pem",
            "Other-abc.pem",
        ] {
            assert!(!is_cert_file_name(name), "{name}");
        }
    }
}
