//! DynamoDB helpers shared by the deploy lock and the audit table.

use std::collections::HashMap;

use anyhow::Result;
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> i64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// Creates a table with the given string keys when it does not exist (PAY_PER_REQUEST).
/// Production tables come from Terraform; this makes a fresh account (local, tests) work.
pub async fn ensure_table(ddb: &Ddb, table: &str, pk: &str, sk: Option<&str>) -> Result<()> {
    match ddb.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("DescribeTable {table}")));
        }
    }
    let mut req = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in [(Some(pk), KeyType::Hash), (sk, KeyType::Range)] {
        let Some(name) = name else { continue };
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()?,
            );
    }
    match req.send().await {
        Ok(_) => Ok(()),
        // Another process created it at the same time.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("CreateTable {table}"))),
    }
}
