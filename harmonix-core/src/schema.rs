//! JSON Schema of the spec file, generated from the Rust types.

use crate::spec::SpecFile;

/// The JSON Schema (draft 2020-12) of a spec file, as a JSON value.
///
/// ```
/// let schema = harmonix_core::schema::spec_schema();
/// assert_eq!(schema["title"], "SpecFile");
/// ```
pub fn spec_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(SpecFile);
    serde_json::to_value(schema).unwrap_or_default()
}

/// [`spec_schema`] as pretty JSON with a final newline.
pub fn spec_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&spec_schema()).unwrap_or_default();
    s.push('\n');
    s
}
