//! The table definition — one source for `create_table` (tests, benchmarks, local scripts)
//! and for the test that keeps `template.yaml` in step.
//!
//! [`TableDefinition`] serialises to exactly the shape of the `AWS::DynamoDB::Table`
//! properties it covers (`AttributeDefinitions`, `KeySchema`, `GlobalSecondaryIndexes`,
//! `BillingMode`, `TimeToLiveSpecification`), so the template test compares JSON values.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde::Serialize;

use portal_core::ports::StoreError;

/// The table's keys, indexes, billing and TTL, in CloudFormation's property names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDefinition {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyElement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub global_secondary_indexes: Vec<IndexDef>,
    pub billing_mode: String,
    pub time_to_live_specification: TtlDef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionDef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDef {
    pub projection_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlDef {
    pub attribute_name: String,
    pub enabled: bool,
}

/// The attribute DynamoDB's TTL reads (epoch seconds); items without it never expire.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The sparse, overloaded secondary index (see the module docs: account numbers and
/// invitation tokens).
pub const GSI1: &str = "gsi1";

fn string_attr(name: &str) -> AttributeDef {
    AttributeDef {
        attribute_name: name.into(),
        attribute_type: "S".into(),
    }
}

fn key(name: &str, key_type: &str) -> KeyElement {
    KeyElement {
        attribute_name: name.into(),
        key_type: key_type.into(),
    }
}

/// The single table: `pk`/`sk` strings, one sparse GSI, on-demand billing, TTL on `ttl`.
pub fn table_definition() -> TableDefinition {
    TableDefinition {
        attribute_definitions: ["pk", "sk", "gsi1pk", "gsi1sk"]
            .into_iter()
            .map(string_attr)
            .collect(),
        key_schema: vec![key("pk", "HASH"), key("sk", "RANGE")],
        global_secondary_indexes: vec![IndexDef {
            index_name: GSI1.into(),
            key_schema: vec![key("gsi1pk", "HASH"), key("gsi1sk", "RANGE")],
            projection: ProjectionDef {
                projection_type: "ALL".into(),
            },
        }],
        billing_mode: "PAY_PER_REQUEST".into(),
        time_to_live_specification: TtlDef {
            attribute_name: TTL_ATTRIBUTE.into(),
            enabled: true,
        },
    }
}

/// The definition could not be expressed as an SDK request (a bug in the definition).
#[derive(Debug, thiserror::Error)]
#[error("invalid table definition: {0}")]
struct DefinitionError(String);

fn sdk_keys(elems: &[KeyElement]) -> Result<Vec<KeySchemaElement>, StoreError> {
    elems
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| StoreError::backend("CreateTable", e))
        })
        .collect()
}

/// Creates the table as [`table_definition`] describes it, waits until it is active and
/// enables TTL. For tests, benchmarks and local emulators; production tables come from
/// `template.yaml`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let def = table_definition();
    let attrs = def
        .attribute_definitions
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| StoreError::backend("CreateTable", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gsis = def
        .global_secondary_indexes
        .iter()
        .map(|g| {
            GlobalSecondaryIndex::builder()
                .index_name(&g.index_name)
                .set_key_schema(Some(sdk_keys(&g.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            g.projection.projection_type.as_str(),
                        ))
                        .build(),
                )
                .build()
                .map_err(|e| StoreError::backend("CreateTable", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attrs))
        .set_key_schema(Some(sdk_keys(&def.key_schema)?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .billing_mode(BillingMode::from(def.billing_mode.as_str()))
        .send()
        .await
        .map_err(|e| StoreError::backend("CreateTable", e))?;

    // DynamoDB creates tables asynchronously; emulators are usually active at once.
    let mut active = false;
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| StoreError::backend("DescribeTable", e))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        return Err(StoreError::backend(
            "CreateTable",
            DefinitionError(format!("table {name} did not become active")),
        ));
    }

    let ttl = &def.time_to_live_specification;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(&ttl.attribute_name)
                .enabled(ttl.enabled)
                .build()
                .map_err(|e| StoreError::backend("UpdateTimeToLive", e))?,
        )
        .send()
        .await
        .map_err(|e| StoreError::backend("UpdateTimeToLive", e))?;
    Ok(())
}
