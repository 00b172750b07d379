//! Intrinsic functions, as JSON values.

use serde_json::{Value, json};

/// `{"Ref": name}`.
pub fn ref_(name: &str) -> Value {
    json!({ "Ref": name })
}
/// `{"Fn::GetAtt": [id, attr]}`.
pub fn get_att(logical_id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [logical_id, attribute] })
}
/// `{"Fn::Sub": text}`.
pub fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}
/// `{"Fn::Join": [sep, parts]}`.
pub fn join(separator: &str, parts: Vec<Value>) -> Value {
    json!({ "Fn::Join": [separator, parts] })
}
/// `{"Fn::Select": [index, list]}`.
pub fn select(index: u32, list: Value) -> Value {
    json!({ "Fn::Select": [index.to_string(), list] })
}
/// `{"Fn::GetAZs": ""}` (the region's AZs).
pub fn get_azs() -> Value {
    json!({ "Fn::GetAZs": "" })
}
/// `{"Fn::Cidr": [block, count, bits]}`.
pub fn cidr(block: Value, count: u32, cidr_bits: u32) -> Value {
    json!({ "Fn::Cidr": [block, count.to_string(), cidr_bits.to_string()] })
}
/// `{"Fn::If": [cond, a, b]}`.
pub fn if_(condition: &str, then: Value, otherwise: Value) -> Value {
    json!({ "Fn::If": [condition, then, otherwise] })
}
/// `{"Fn::Equals": [a, b]}`.
pub fn equals(a: Value, b: Value) -> Value {
    json!({ "Fn::Equals": [a, b] })
}
/// `{"Fn::Not": [c]}`.
pub fn not(c: Value) -> Value {
    json!({ "Fn::Not": [c] })
}
/// `{"Ref": "AWS::NoValue"}`.
pub fn no_value() -> Value {
    ref_("AWS::NoValue")
}
/// A CloudFormation tag list from `(key, value)` pairs, sorted by key.
pub fn tags<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut v: Vec<(&str, Value)> = pairs.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    Value::Array(
        v.into_iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect(),
    )
}

/// The variable names in a `Fn::Sub` string (`${Name}`, `${Res.Attr}`),
/// skipping literal `${!…}`.
pub fn sub_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            out.push(name);
        }
        rest = &after[end + 1..];
    }
    out
}
