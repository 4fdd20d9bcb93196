//! Creates the table of `template.yaml` in DynamoDB Local.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use crate::template::{KeyElement, TableSpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>, BoxError> {
    elements
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

/// Creates `name` from `spec` (on-demand, with its GSIs and TTL). Returns false if it existed.
pub async fn ensure_table(client: &Client, name: &str, spec: &TableSpec) -> Result<bool, BoxError> {
    let existing = client.list_tables().send().await?;
    if existing.table_names().iter().any(|t| t == name) {
        return Ok(false);
    }
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attr, kind) in &spec.attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    create = create.set_key_schema(Some(key_schema(&spec.key_schema)?));
    for index in &spec.global_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection_type.as_str()))
            .set_non_key_attributes(
                (!index.non_key_attributes.is_empty()).then(|| index.non_key_attributes.clone()),
            )
            .build();
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(projection)
                .build()?,
        );
    }
    create.send().await?;
    if let Some(attr) = &spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await?;
    }
    Ok(true)
}
