//! A small typed model of a CloudFormation template that serializes
//! deterministically: the same model gives byte-identical JSON.
//!
//! Providers build templates with it, never with string formatting:
//!
//! ```
//! use harmonix_core::template::{Template, Resource, Output, Parameter, fns};
//! use serde_json::json;
//!
//! let mut t = Template::new("A log group");
//! t.parameter("Prefix", Parameter::string("Name prefix"));
//! t.resource(
//!     "LogGroup",
//!     Resource::new("AWS::Logs::LogGroup")
//!         .property("LogGroupName", fns::sub("/${Prefix}/environment"))
//!         .property("RetentionInDays", json!(90)),
//! );
//! t.output("LogGroupName", Output::new(fns::ref_("LogGroup")));
//! assert!(t.dangling_references().is_empty());
//! assert_eq!(t.to_json(), t.clone().to_json());
//! ```

pub mod fns;
pub mod quotas;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The template format version written to every template.
pub const FORMAT_VERSION: &str = "2010-09-09";

/// A CloudFormation template.
///
/// Fields are declared in the order of their JSON keys, and nested JSON
/// values are written with sorted keys (module `sorted`), so serializing
/// gives canonical JSON directly, without an intermediate value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Template {
    #[serde(rename = "AWSTemplateFormatVersion")]
    format_version: &'static str,
    /// Conditions by name.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "sorted::map"
    )]
    pub conditions: BTreeMap<String, Value>,
    /// Template description.
    pub description: String,
    /// `Metadata` section (e.g. `cfn-lint` configuration).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "sorted::map"
    )]
    pub metadata: BTreeMap<String, Value>,
    /// Outputs by logical name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Output>,
    /// Parameters by logical name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Parameter>,
    /// Resources by logical id.
    pub resources: BTreeMap<String, Resource>,
}

/// A template parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// Allowed pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// Allowed values.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "sorted::seq")]
    pub allowed_values: Vec<Value>,
    /// Default value.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted::option"
    )]
    pub default: Option<Value>,
    /// Description shown in the console.
    pub description: String,
    /// Hide the value in the console and API output.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_echo: bool,
    /// CloudFormation parameter type, e.g. `String`.
    #[serde(rename = "Type")]
    pub kind: String,
}

impl Parameter {
    /// A `String` parameter.
    pub fn string(description: impl Into<String>) -> Self {
        Self::of_type("String", description)
    }
    /// A parameter of any CloudFormation type.
    pub fn of_type(kind: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            description: description.into(),
            default: None,
            allowed_values: Vec::new(),
            allowed_pattern: None,
            no_echo: false,
        }
    }
    /// Set the default.
    #[must_use]
    pub fn default_value(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
    /// Set the allowed values.
    #[must_use]
    pub fn allowed(mut self, values: impl IntoIterator<Item = impl Into<Value>>) -> Self {
        self.allowed_values = values.into_iter().map(Into::into).collect();
        self
    }
    /// Set the allowed pattern.
    #[must_use]
    pub fn pattern(mut self, p: impl Into<String>) -> Self {
        self.allowed_pattern = Some(p.into());
        self
    }
}

/// A resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    /// Condition name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `CreationPolicy` (e.g. `ResourceSignal` of an Auto Scaling group).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted::option"
    )]
    pub creation_policy: Option<Value>,
    /// Deletion policy (`Retain`, `Delete`, `Snapshot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<String>,
    /// Explicit dependencies.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub depends_on: BTreeSet<String>,
    /// Resource metadata (e.g. checkov/cfn-lint suppressions with reasons).
    #[serde(
        skip_serializing_if = "Map::is_empty",
        serialize_with = "sorted::object"
    )]
    pub metadata: Map<String, Value>,
    /// Properties, sorted by name.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "sorted::map"
    )]
    pub properties: BTreeMap<String, Value>,
    /// Resource type, e.g. `AWS::EC2::VPC`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `UpdatePolicy` (e.g. `AutoScalingRollingUpdate` of an Auto Scaling
    /// group).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted::option"
    )]
    pub update_policy: Option<Value>,
    /// Update-replace policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_replace_policy: Option<String>,
}

impl Resource {
    /// A resource of `kind` with no properties.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            condition: None,
            creation_policy: None,
            depends_on: BTreeSet::new(),
            deletion_policy: None,
            update_policy: None,
            update_replace_policy: None,
            metadata: Map::new(),
            properties: BTreeMap::new(),
        }
    }
    /// Set a property.
    #[must_use]
    pub fn property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
    /// Set a property only when `value` is `Some`.
    #[must_use]
    pub fn property_opt(self, name: impl Into<String>, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.property(name, v),
            None => self,
        }
    }
    /// Add a `DependsOn`.
    #[must_use]
    pub fn depends_on(mut self, logical_id: impl Into<String>) -> Self {
        self.depends_on.insert(logical_id.into());
        self
    }
    /// Set the condition.
    #[must_use]
    pub fn condition(mut self, name: impl Into<String>) -> Self {
        self.condition = Some(name.into());
        self
    }
    /// Set both deletion and update-replace policy.
    #[must_use]
    pub fn retain_policy(mut self, policy: &str) -> Self {
        self.deletion_policy = Some(policy.to_owned());
        self.update_replace_policy = Some(policy.to_owned());
        self
    }
    /// Set the `UpdatePolicy` attribute.
    #[must_use]
    pub fn update_policy(mut self, policy: Value) -> Self {
        self.update_policy = Some(policy);
        self
    }
    /// Set the `CreationPolicy` attribute.
    #[must_use]
    pub fn creation_policy(mut self, policy: Value) -> Self {
        self.creation_policy = Some(policy);
        self
    }
    /// Suppress checkov check `id` on this resource, with the reason
    /// (kept in the template: `Metadata.checkov.skip[].comment`).
    #[must_use]
    pub fn checkov_skip(mut self, id: &str, reason: &str) -> Self {
        let entry = serde_json::json!({ "id": id, "comment": reason });
        let checkov = self
            .metadata
            .entry("checkov".to_owned())
            .or_insert_with(|| serde_json::json!({ "skip": [] }));
        if let Some(list) = checkov.get_mut("skip").and_then(Value::as_array_mut) {
            list.push(entry);
        }
        self
    }
    /// Set a metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }
}

/// A stack output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// Condition name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Export name.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted::option"
    )]
    pub export: Option<Value>,
    /// The value (usually an intrinsic function).
    #[serde(serialize_with = "sorted::value")]
    pub value: Value,
}

impl Output {
    /// An output with this value.
    pub fn new(value: impl Into<Value>) -> Self {
        Self {
            description: None,
            value: value.into(),
            export: None,
            condition: None,
        }
    }
    /// Set the description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Export under this name.
    #[must_use]
    pub fn export(mut self, name: impl Into<Value>) -> Self {
        self.export = Some(serde_json::json!({ "Name": name.into() }));
        self
    }
    /// Set the condition.
    #[must_use]
    pub fn condition(mut self, name: impl Into<String>) -> Self {
        self.condition = Some(name.into());
        self
    }
}

impl Template {
    /// An empty template.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            description: description.into(),
            ..Self::default()
        }
    }
    /// Add or replace a parameter.
    pub fn parameter(&mut self, name: impl Into<String>, p: Parameter) -> &mut Self {
        self.parameters.insert(name.into(), p);
        self
    }
    /// Add or replace a condition.
    pub fn condition(&mut self, name: impl Into<String>, c: Value) -> &mut Self {
        self.conditions.insert(name.into(), c);
        self
    }
    /// Add or replace a resource.
    pub fn resource(&mut self, logical_id: impl Into<String>, r: Resource) -> &mut Self {
        self.resources.insert(logical_id.into(), r);
        self
    }
    /// Add or replace an output.
    pub fn output(&mut self, name: impl Into<String>, o: Output) -> &mut Self {
        self.outputs.insert(name.into(), o);
        self
    }

    /// Pretty JSON with sorted keys and a final newline: the same model
    /// always gives the same bytes.
    pub fn to_json(&self) -> String {
        let mut buf = Vec::with_capacity(32 * 1024);
        self.write_json(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Write [`Self::to_json`]'s bytes to `out` (e.g. straight into a
    /// hasher).
    pub fn write_json(&self, out: &mut impl std::io::Write) {
        // Serializing plain data into memory or a hasher cannot fail.
        let _ = serde_json::to_writer_pretty(&mut *out, self);
        let _ = out.write_all(b"\n");
    }

    /// Compact JSON with sorted keys (what content hashes are taken of:
    /// fewer bytes, same determinism).
    pub fn write_compact_json(&self, out: &mut impl std::io::Write) {
        let _ = serde_json::to_writer(&mut *out, self);
    }

    /// [`Self::write_compact_json`] as a string: what the engine sends to
    /// CloudFormation (half the size of [`Self::to_json`], so more
    /// templates fit the 51,200-byte inline limit; see [`quotas`]).
    pub fn to_compact_json(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        self.write_compact_json(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Hex SHA-256 of [`Self::to_json`].
    pub fn sha256(&self) -> String {
        let mut h = HashWriter(Sha256::new());
        self.write_json(&mut h);
        hex_digest(&h.0.finalize())
    }

    /// `Ref`, `Fn::GetAtt`, `Fn::Sub` (`${X}` / `${X.Attr}`), `DependsOn`
    /// and `Condition` targets that name no parameter, resource, condition
    /// or pseudo parameter. Empty for a well-formed template.
    pub fn dangling_references(&self) -> Vec<String> {
        let mut bad = BTreeSet::new();
        let known = |name: &str| {
            name.starts_with("AWS::")
                || self.parameters.contains_key(name)
                || self.resources.contains_key(name)
        };
        let mut check_value = |v: &Value| {
            walk_refs(v, &mut |r| {
                if !known(r) {
                    bad.insert(r.to_owned());
                }
            });
        };
        for r in self.resources.values() {
            r.properties.values().for_each(&mut check_value);
        }
        for o in self.outputs.values() {
            check_value(&o.value);
        }
        for c in self.conditions.values() {
            check_value(c);
        }
        for (id, r) in &self.resources {
            for d in &r.depends_on {
                if !self.resources.contains_key(d) {
                    bad.insert(format!("{id}.DependsOn:{d}"));
                }
            }
            if let Some(c) = &r.condition
                && !self.conditions.contains_key(c)
            {
                bad.insert(format!("{id}.Condition:{c}"));
            }
        }
        bad.into_iter().collect()
    }
}

/// Hex SHA-256 of some bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex_digest(&Sha256::digest(bytes))
}

/// Lower-case hex of a digest.
pub(crate) fn hex_digest(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An `io::Write` feeding a SHA-256.
pub(crate) struct HashWriter(pub(crate) Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializing JSON values with their object keys sorted (byte order),
/// whatever order they were built in, without copying them.
mod sorted {
    use std::collections::BTreeMap;

    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};
    use serde_json::{Map, Value};

    /// A value serialized with sorted keys.
    struct Sorted<'a>(&'a Value);

    impl Serialize for Sorted<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Object(m) => object(m, s),
                Value::Array(a) => seq(a, s),
                other => other.serialize(s),
            }
        }
    }

    pub(super) fn value<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        Sorted(v).serialize(s)
    }

    #[allow(clippy::ref_option)]
    pub(super) fn option<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => Sorted(v).serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn seq<S: Serializer>(v: &[Value], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&Sorted(x))?;
        }
        seq.end()
    }

    pub(super) fn object<S: Serializer>(m: &Map<String, Value>, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&String, &Value)> = m.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &Sorted(v))?;
        }
        map.end()
    }

    pub(super) fn map<S: Serializer>(m: &BTreeMap<String, Value>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &Sorted(v))?;
        }
        map.end()
    }
}

/// Call `f` with every logical name referenced by `Ref`, `Fn::GetAtt` or `Fn::Sub`.
fn walk_refs(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(m) => {
            if m.len() == 1 {
                if let Some(Value::String(r)) = m.get("Ref") {
                    f(r);
                    return;
                }
                if let Some(Value::Array(a)) = m.get("Fn::GetAtt")
                    && let Some(Value::String(r)) = a.first()
                {
                    f(r);
                    return;
                }
                if let Some(sub) = m.get("Fn::Sub") {
                    let (text, vars) = match sub {
                        Value::String(s) => (s.as_str(), None),
                        Value::Array(a) => (
                            a.first().and_then(Value::as_str).unwrap_or_default(),
                            a.get(1).and_then(Value::as_object),
                        ),
                        _ => ("", None),
                    };
                    for name in fns::sub_variables(text) {
                        let base = name.split('.').next().unwrap_or_default();
                        if !vars.is_some_and(|m| m.contains_key(base)) {
                            f(base);
                        }
                    }
                    if let Some(vars) = vars {
                        vars.values().for_each(|v| walk_refs(v, f));
                    }
                    return;
                }
            }
            m.values().for_each(|v| walk_refs(v, f));
        }
        Value::Array(a) => a.iter().for_each(|v| walk_refs(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Template {
        let mut t = Template::new("sample");
        t.parameter("Prefix", Parameter::string("prefix"));
        t.resource(
            "Bucket",
            Resource::new("AWS::S3::Bucket")
                .property("BucketName", fns::sub("${Prefix}-${AWS::Region}-data"))
                .property("Zeta", json!({ "b": 1, "a": 2 })),
        );
        t.resource(
            "Policy",
            Resource::new("AWS::S3::BucketPolicy")
                .depends_on("Bucket")
                .property("Bucket", fns::ref_("Bucket")),
        );
        t.output("Arn", Output::new(fns::get_att("Bucket", "Arn")));
        t
    }

    #[test]
    fn json_has_sorted_keys_and_a_final_newline() {
        let s = sample().to_json();
        assert!(s.ends_with("}\n"));
        let a = s.find("\"a\": 2").expect("a");
        let b = s.find("\"b\": 1").expect("b");
        assert!(a < b, "nested keys sorted: {s}");
        assert!(s.starts_with("{\n  \"AWSTemplateFormatVersion\": \"2010-09-09\""));
        assert_eq!(sample().sha256(), sample().sha256());
        assert_eq!(sample().sha256().len(), 64);
    }

    #[test]
    fn well_formed_template_has_no_dangling_references() {
        assert!(sample().dangling_references().is_empty());
    }

    #[test]
    fn dangling_ref_getatt_sub_dependson_and_condition_are_found() {
        let mut t = sample();
        t.resource(
            "Broken",
            Resource::new("AWS::SNS::Topic")
                .property("A", fns::ref_("Nope"))
                .property("B", fns::get_att("Missing", "Arn"))
                .property("C", fns::sub("${Gone.Arn}-${Prefix}-${!Literal}"))
                .property(
                    "D",
                    json!({ "Fn::Sub": ["${Local}-${Absent}", { "Local": fns::ref_("Prefix") }] }),
                )
                .depends_on("Ghost")
                .condition("NoSuchCondition"),
        );
        let bad = t.dangling_references();
        for name in [
            "Nope",
            "Missing",
            "Gone",
            "Absent",
            "Broken.DependsOn:Ghost",
            "Broken.Condition:NoSuchCondition",
        ] {
            assert!(bad.iter().any(|b| b == name), "{name} not in {bad:?}");
        }
        assert!(
            !bad.iter()
                .any(|b| b == "Local" || b == "Literal" || b == "Prefix"),
            "{bad:?}"
        );
    }

    #[test]
    fn sub_variables_skip_literals() {
        assert_eq!(
            fns::sub_variables("${A}-${B.Arn}-${!C}-${AWS::Region}"),
            vec!["A", "B.Arn", "AWS::Region"]
        );
        assert!(fns::sub_variables("${unterminated").is_empty());
    }

    #[test]
    fn update_and_creation_policies_are_written_in_key_order() {
        let mut t = Template::new("group");
        t.resource(
            "Group",
            Resource::new("AWS::AutoScaling::AutoScalingGroup")
                .property("MinSize", "1")
                .creation_policy(json!({ "ResourceSignal": { "Timeout": "PT5M", "Count": 1 } }))
                .update_policy(json!({ "AutoScalingRollingUpdate": { "PauseTime": "PT5M", "MinInstancesInService": 1 } }))
                .retain_policy("Delete"),
        );
        let s = t.to_json();
        let at = |k: &str| s.find(k).unwrap_or_else(|| panic!("{k} missing: {s}"));
        assert!(at("\"CreationPolicy\"") < at("\"DeletionPolicy\""), "{s}");
        assert!(at("\"Type\"") < at("\"UpdatePolicy\""), "{s}");
        assert!(
            at("\"UpdatePolicy\"") < at("\"UpdateReplacePolicy\""),
            "{s}"
        );
        assert!(
            at("\"Count\"") < at("\"Timeout\""),
            "nested keys sorted: {s}"
        );
        assert!(at("\"MinInstancesInService\"") < at("\"PauseTime\""), "{s}");
        let plain = Resource::new("AWS::SNS::Topic");
        let json = serde_json::to_string(&plain).unwrap_or_default();
        assert!(!json.contains("Policy"), "{json}");
    }

    #[test]
    fn tags_are_sorted_by_key() {
        let t = fns::tags([("b", json!("2")), ("a", json!("1"))]);
        assert_eq!(
            t,
            json!([{ "Key": "a", "Value": "1" }, { "Key": "b", "Value": "2" }])
        );
    }
}
