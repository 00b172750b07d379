//! JSON Schema of the spec file, generated from the Rust types.

use serde_json::{Value, json};

use crate::spec::SpecFile;

/// Legacy Harmonix parameter names accepted in place of a field:
/// `(provider field, alias)`. The parser accepts them through serde
/// aliases; the schema lists them too so editors do not flag migrated files.
pub const PROVIDER_FIELD_ALIASES: [(&str, &str); 2] =
    [("account", "awsAccountID"), ("region", "awsRegion")];

/// The JSON Schema (draft 2020-12) of a spec file, as a JSON value.
///
/// ```
/// let schema = harmonix_core::schema::spec_schema();
/// assert_eq!(schema["title"], "SpecFile");
/// // Either spelling of an aliased field satisfies the schema.
/// assert!(schema["$defs"]["ProviderSpec"]["properties"]["awsAccountID"].is_object());
/// ```
pub fn spec_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(SpecFile)).unwrap_or_default();
    if let Some(provider) = schema
        .get_mut("$defs")
        .and_then(|d| d.get_mut("ProviderSpec"))
    {
        add_aliases(provider);
    }
    schema
}

/// Add each alias as a property with the field's schema, and require
/// "the field or its alias" instead of the field.
fn add_aliases(provider: &mut Value) {
    let mut any_of = Vec::new();
    for (field, alias) in PROVIDER_FIELD_ALIASES {
        let Some(props) = provider
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        let Some(mut field_schema) = props.get(field).cloned() else {
            continue;
        };
        if let Some(obj) = field_schema.as_object_mut() {
            obj.insert(
                "description".into(),
                json!(format!("Legacy Harmonix name of `{field}`.")),
            );
        }
        props.insert(alias.to_owned(), field_schema);
        if let Some(required) = provider.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| r != field);
        }
        any_of.push(json!({
            "oneOf": [{ "required": [field] }, { "required": [alias] }]
        }));
    }
    if let Some(obj) = provider.as_object_mut() {
        obj.insert("allOf".into(), Value::Array(any_of));
    }
}

/// [`spec_schema`] as pretty JSON with a final newline.
pub fn spec_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&spec_schema()).unwrap_or_default();
    s.push('\n');
    s
}
