//! Sign-up in `template.yaml`: the Cognito user pool and its app client are what the
//! adapter (`portal_aws::cognito`) and the code's password rules expect, only `registration`
//! may call Cognito (exactly the adapter's calls, on that pool), and the public registration
//! pages are throttled on the HTTP API stage.

use std::collections::BTreeSet;

use portal_aws::cognito::{CUSTOM_ATTRIBUTES, IAM_ACTIONS, MAX_ATTRIBUTE_CHARS};
use portal_core::domain::{MAX_ID_LEN, MIN_PASSWORD_CHARS};
use portal_http::{Job, PUBLIC_ROUTES};

use crate::yaml::*;

fn user_pool(doc: &Value) -> (&str, &Value) {
    only_resource_of(doc, "AWS::Cognito::UserPool")
}

#[test]
fn the_user_pool_takes_usernames_admin_created_with_the_codes_password_rules() {
    let doc = template();
    let (id, pool) = user_pool(&doc);
    let props = &pool["Properties"];
    // Usernames are `{tenant}:{email}`: an email username attribute (or alias) would make
    // one address one user across tenants.
    for key in ["UsernameAttributes", "AliasAttributes"] {
        assert!(props[key].is_null(), "{id}: {key}");
    }
    assert_eq!(
        props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"].as_bool(),
        Some(true),
        "{id}: nobody signs up without the registration function"
    );
    // Cognito sends nothing by itself: the adapter suppresses the invitation message and
    // verification is ours (the confirmation link).
    assert!(props["AutoVerifiedAttributes"].is_null(), "{id}");
    let policy = &props["Policies"]["PasswordPolicy"];
    assert_eq!(
        policy["MinimumLength"].as_u64(),
        Some(MIN_PASSWORD_CHARS as u64),
        "{id}: the code's minimum"
    );
    // NIST rules, no composition rules: Cognito must not refuse what the code accepts.
    for rule in [
        "RequireLowercase",
        "RequireUppercase",
        "RequireNumbers",
        "RequireSymbols",
    ] {
        assert_eq!(policy[rule].as_bool(), Some(false), "{id}: {rule}");
    }
    assert_eq!(
        pool["DeletionPolicy"].as_str(),
        Some("Retain"),
        "{id}: it holds the logins"
    );
}

#[test]
fn the_user_pool_declares_the_adapters_custom_attributes() {
    let doc = template();
    let (id, pool) = user_pool(&doc);
    let schema = pool["Properties"]["Schema"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{id}: no Schema"));
    let declared: BTreeSet<&str> = schema.iter().filter_map(|a| a["Name"].as_str()).collect();
    for name in CUSTOM_ATTRIBUTES {
        assert!(
            declared.contains(name),
            "{id}: custom:{name} is not declared"
        );
        let a = schema
            .iter()
            .find(|a| a["Name"].as_str() == Some(name))
            .expect("declared");
        assert_eq!(
            a["AttributeDataType"].as_str(),
            Some("String"),
            "{id}: {name}"
        );
        let max: usize = a["StringAttributeConstraints"]["MaxLength"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{id}: {name} has no MaxLength"));
        if name == "tenant" {
            assert!(max >= MAX_ID_LEN, "{id}: {name} holds a tenant id");
            assert_eq!(
                a["Mutable"].as_bool(),
                Some(false),
                "{id}: a user never changes tenant"
            );
        } else {
            assert!(
                max >= MAX_ATTRIBUTE_CHARS,
                "{id}: {name} holds a list of ids"
            );
            assert_eq!(a["Mutable"].as_bool(), Some(true), "{id}: {name} grows");
        }
    }
}

#[test]
fn the_portals_app_client_has_no_secret_and_signs_in_with_the_password() {
    let doc = template();
    let (pool, _) = user_pool(&doc);
    let (id, client) = only_resource_of(&doc, "AWS::Cognito::UserPoolClient");
    let props = &client["Properties"];
    assert_eq!(ref_of(&props["UserPoolId"]), Some(pool), "{id}");
    assert_eq!(
        props["GenerateSecret"].as_bool(),
        Some(false),
        "{id}: no client secret (USER_PASSWORD_AUTH without SECRET_HASH)"
    );
    let mut flows = strings(&props["ExplicitAuthFlows"]);
    flows.sort_unstable();
    assert_eq!(
        flows,
        ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"],
        "{id}"
    );
    // Users must not rewrite what the portal trusts about them.
    for attribute in strings(&props["WriteAttributes"]) {
        assert!(
            !attribute.starts_with("custom:") && attribute != "email",
            "{id}: users may write {attribute}"
        );
    }
    assert!(
        !props["WriteAttributes"].is_null(),
        "{id}: without WriteAttributes users may write every attribute, custom:tenant included"
    );
}

#[test]
fn only_registration_calls_cognito_exactly_the_adapters_calls_on_the_pool() {
    let doc = template();
    let (pool, _) = user_pool(&doc);
    let (client, _) = only_resource_of(&doc, "AWS::Cognito::UserPoolClient");
    let registration = Job::Registration.function();
    for f in functions(&doc) {
        let id = f.id;
        let cognito: BTreeSet<&str> = f
            .actions()
            .into_iter()
            .filter(|a| a.starts_with("cognito-idp:"))
            .collect();
        if f.binary != registration {
            assert!(cognito.is_empty(), "{id} may call {cognito:?}");
            for var in ["USER_POOL_ID", "USER_POOL_CLIENT_ID"] {
                assert!(f.env()[var].is_null(), "{id}: {var}");
            }
            continue;
        }
        let want: BTreeSet<&str> = IAM_ACTIONS.into_iter().collect();
        assert_eq!(cognito, want, "{id}: the adapter's calls, no more");
        for s in f.statements() {
            if strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("cognito-idp:"))
            {
                assert_eq!(
                    get_att_of(&s["Resource"]),
                    Some(format!("{pool}.Arn")),
                    "{id}: the pool only"
                );
            }
        }
        assert_eq!(ref_of(&f.env()["USER_POOL_ID"]), Some(pool), "{id}");
        assert_eq!(
            ref_of(&f.env()["USER_POOL_CLIENT_ID"]),
            Some(client),
            "{id}"
        );
    }
}

#[test]
fn the_public_registration_pages_are_throttled_on_the_stage() {
    let doc = template();
    let f = function(&doc, Job::Registration.function());
    let public: BTreeSet<(&str, &str)> = PUBLIC_ROUTES.iter().copied().collect();
    let mut throttled = 0;
    for (name, event) in f.events_of("HttpApi") {
        let props = &event["Properties"];
        let method = props["Method"].as_str().unwrap_or_default().to_uppercase();
        let path = props["Path"].as_str().unwrap_or_default();
        let at = format!("{}.{name}", f.id);
        if !path.starts_with("/register") {
            continue;
        }
        assert!(
            public.contains(&(method.as_str(), path)),
            "{at}: {method} {path} is not a public route"
        );
        assert_eq!(props["Auth"]["Authorizer"].as_str(), Some("NONE"), "{at}");
        let settings = &props["RouteSettings"];
        for key in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let limit = &settings[key];
            let parameter = ref_of(limit);
            let bounded = match parameter {
                Some(p) => doc["Parameters"][p]["Type"].as_str() == Some("Number"),
                None => limit.as_f64().is_some_and(|v| v > 0.0),
            };
            assert!(bounded, "{at}: RouteSettings.{key} is {limit:?}");
        }
        throttled += 1;
    }
    let pages = PUBLIC_ROUTES
        .iter()
        .filter(|(_, p)| p.starts_with("/register"))
        .count();
    assert!(pages > 0, "PUBLIC_ROUTES has no registration page");
    assert_eq!(
        throttled, pages,
        "every public registration page is throttled"
    );
}

#[test]
fn the_pool_and_client_ids_are_outputs() {
    let doc = template();
    let (pool, _) = user_pool(&doc);
    let (client, _) = only_resource_of(&doc, "AWS::Cognito::UserPoolClient");
    let outputs = doc["Outputs"].as_mapping().expect("Outputs");
    let refs: BTreeSet<&str> = outputs
        .values()
        .filter_map(|o| ref_of(&o["Value"]))
        .collect();
    assert!(refs.contains(pool), "no output gives the user pool id");
    assert!(refs.contains(client), "no output gives the app client id");
}
