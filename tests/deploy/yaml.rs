//! Reading `template.yaml` (and the workspace files it names) as the tests need it.
//!
//! CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`, `!Equals`, `!If`) parse as tagged
//! YAML values; [`intrinsic`] and the helpers on it read the short and the long form
//! (`{Ref: X}`, `{Fn::GetAtt: [X, Attr]}`) alike and ignore every other tag.

use std::path::{Path, PathBuf};

pub use serde_yaml::Value;

/// The workspace root (`template.yaml`, `openapi.yaml`, `README.md`, `functions/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn read(file: &str) -> String {
    let path = root().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn template() -> Value {
    serde_yaml::from_str(&read("template.yaml")).expect("template.yaml parses")
}

/// The value of short tag `!{name}` or long form `{Fn::name}` / `{Ref}`.
pub fn intrinsic<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        Value::Mapping(_) if name == "Ref" => v.get("Ref"),
        Value::Mapping(_) => v.get(format!("Fn::{name}")),
        _ => None,
    }
}

/// `X` of `!Ref X` or `{Ref: X}`.
pub fn ref_of(v: &Value) -> Option<&str> {
    intrinsic(v, "Ref").and_then(Value::as_str)
}

/// `"X.Attr"` of `!GetAtt X.Attr` or `{Fn::GetAtt: [X, Attr]}`.
pub fn get_att_of(v: &Value) -> Option<String> {
    match intrinsic(v, "GetAtt")? {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(parts) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            Some(parts.join("."))
        }
        _ => None,
    }
}

/// The format string of `!Sub "..."`.
pub fn sub_of(v: &Value) -> Option<&str> {
    intrinsic(v, "Sub").and_then(Value::as_str)
}

/// A string or a list of strings (IAM's `Action`, an event pattern's values), as a list.
pub fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `(logical id, resource)` of every resource of `kind`.
pub fn resources_of<'a>(doc: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    doc["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(id, r)| Some((id.as_str()?, r)))
        .collect()
}

pub fn only_resource_of<'a>(doc: &'a Value, kind: &str) -> (&'a str, &'a Value) {
    let found = resources_of(doc, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}: {found:?}");
    found[0]
}

/// A function of the template built by cargo-lambda.
#[derive(Debug, Clone, Copy)]
pub struct Function<'a> {
    /// Its logical id.
    pub id: &'a str,
    /// The crate binary it runs (`Metadata.BuildProperties.Binary`).
    pub binary: &'a str,
    pub resource: &'a Value,
}

impl<'a> Function<'a> {
    pub fn props(&self) -> &'a Value {
        &self.resource["Properties"]
    }

    pub fn env(&self) -> &'a Value {
        &self.resource["Properties"]["Environment"]["Variables"]
    }

    /// `(event name, event)` of its `Events`.
    pub fn events(&self) -> Vec<(&'a str, &'a Value)> {
        self.props()["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(name, e)| Some((name.as_str()?, e)))
            .collect()
    }

    /// The events of type `kind` (`HttpApi`, `EventBridgeRule`, ...).
    pub fn events_of(&self, kind: &str) -> Vec<(&'a str, &'a Value)> {
        self.events()
            .into_iter()
            .filter(|(_, e)| e["Type"].as_str() == Some(kind))
            .collect()
    }

    /// Every statement of its inline policies.
    pub fn statements(&self) -> Vec<&'a Value> {
        self.props()["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|policy| policy["Statement"].as_sequence().into_iter().flatten())
            .collect()
    }

    /// Every IAM action of its inline policies.
    pub fn actions(&self) -> Vec<&'a str> {
        self.statements()
            .into_iter()
            .flat_map(|s| strings(&s["Action"]))
            .collect()
    }

    pub fn may(&self, action: &str) -> bool {
        self.actions().contains(&action)
    }
}

/// Every `AWS::Serverless::Function`, each of which must be built by cargo-lambda and name
/// its binary.
pub fn functions(doc: &Value) -> Vec<Function<'_>> {
    resources_of(doc, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, r)| {
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}: every function is built by cargo-lambda"
            );
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names no Binary"));
            Function {
                id,
                binary,
                resource: r,
            }
        })
        .collect()
}

/// The one function that runs the crate binary `binary`.
pub fn function<'a>(doc: &'a Value, binary: &str) -> Function<'a> {
    let found: Vec<_> = functions(doc)
        .into_iter()
        .filter(|f| f.binary == binary)
        .collect();
    assert_eq!(found.len(), 1, "one function builds the `{binary}` binary");
    found[0]
}
