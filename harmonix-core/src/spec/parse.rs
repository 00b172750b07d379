//! Reading spec files: size and structure limits, YAML, then typed fields
//! with a path on every error.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::error::{SpecError, ValidationErrors};
use super::model::{EnvironmentSpec, ProviderSpec, SpecFile};

/// Largest spec accepted, in bytes. Real spec files are a few KiB.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Parser limits: no real spec comes close; hostile ones (alias bombs,
/// deep nesting) stop here instead of exhausting memory or time.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 200_000,
            max_aliases: 100,
            max_anchors: 100,
            max_depth: 64,
            max_nodes: 100_000,
            max_total_scalar_bytes: 1024 * 1024,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 20,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        leading_zero_numbers_as_strings: true,
    }
}

/// Read a spec file from disk (at most [`MAX_SPEC_BYTES`]) and parse it.
pub fn read_file(path: &Path) -> Result<SpecFile, SpecError> {
    let io = |source| SpecError::Io {
        path: path.to_owned(),
        source,
    };
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            origin,
            size: len,
            limit: MAX_SPEC_BYTES,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse_bytes(&bytes, &origin)
}

/// Parse a spec from raw bytes (must be UTF-8).
pub fn parse_bytes(bytes: &[u8], origin: &str) -> Result<SpecFile, SpecError> {
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            origin: origin.to_owned(),
            size: bytes.len() as u64,
            limit: MAX_SPEC_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| SpecError::NotUtf8 {
        origin: origin.to_owned(),
        offset: e.valid_up_to(),
    })?;
    parse_str(text, origin)
}

/// Parse a spec from YAML text. `origin` names the source in errors.
///
/// Structural problems (unknown fields, wrong types, missing fields) are
/// collected per provider and environment, each with its field path; the
/// semantic checks run in [`crate::spec::validate`].
pub fn parse_str(text: &str, origin: &str) -> Result<SpecFile, SpecError> {
    if text.len() as u64 > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            origin: origin.to_owned(),
            size: text.len() as u64,
            limit: MAX_SPEC_BYTES,
        });
    }
    let value: Value =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| SpecError::Yaml {
            origin: origin.to_owned(),
            location: e.location().map(|l| {
                (
                    usize::try_from(l.line()).unwrap_or(usize::MAX),
                    usize::try_from(l.column()).unwrap_or(usize::MAX),
                )
            }),
            message: e.without_snippet().to_string(),
        })?;
    from_value(&value, origin)
}

/// Build a spec from an already-parsed JSON value (as the bindings receive
/// a dict or object), with the same field-path errors as [`parse_str`].
pub fn from_value(value: &Value, origin: &str) -> Result<SpecFile, SpecError> {
    let mut errors = ValidationErrors::default();
    let invalid = |errors| SpecError::Invalid {
        origin: origin.to_owned(),
        errors,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outline {
        #[serde(default)]
        api_version: Option<String>,
        providers: Vec<Value>,
        #[serde(default)]
        environments: Vec<Value>,
    }

    if value.is_null() {
        errors.push(
            "",
            None,
            "the spec is empty; expected a mapping with `providers:`",
        );
        return Err(invalid(errors));
    }
    if !value.is_object() {
        // (A sequence would otherwise be read as the struct's fields in order.)
        errors.push(
            "",
            Some(&scalar_text(value)),
            "a spec is a mapping with `providers:`, not a single value or a list",
        );
        return Err(invalid(errors));
    }
    let outline: Outline = match serde_path_to_error::deserialize(value) {
        Ok(o) => o,
        Err(e) => {
            push_serde_error(&mut errors, "", value, &e);
            return Err(invalid(errors));
        }
    };
    if outline.providers.is_empty() {
        errors.push("providers", None, "at least one provider is required");
    }
    let providers = collect::<ProviderSpec>(&outline.providers, "providers", &mut errors);
    let environments =
        collect::<EnvironmentSpec>(&outline.environments, "environments", &mut errors);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(SpecFile {
        api_version: outline.api_version,
        providers,
        environments,
    })
}

fn collect<T: serde::de::DeserializeOwned>(
    items: &[Value],
    field: &str,
    errors: &mut ValidationErrors,
) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let base = format!("{field}[{i}]");
        if !item.is_object() {
            errors.push(
                base,
                Some(&scalar_text(item)),
                "expected a mapping of fields (`key: value`)",
            );
            continue;
        }
        match serde_path_to_error::deserialize::<_, T>(item) {
            Ok(v) => out.push(v),
            Err(e) => push_serde_error(errors, &base, item, &e),
        }
    }
    out
}

/// Turn a serde error into a located [`ValidationError`](super::ValidationError),
/// quoting the value found at that path.
fn push_serde_error(
    errors: &mut ValidationErrors,
    base: &str,
    root: &Value,
    e: &serde_path_to_error::Error<serde_json::Error>,
) {
    let rel = e.path().to_string();
    let rel = if rel == "." { String::new() } else { rel };
    let path = match (base.is_empty(), rel.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => rel.clone(),
        (false, false) if rel.starts_with('[') => format!("{base}{rel}"),
        (false, false) => format!("{base}.{rel}"),
    };
    let message = e.inner().to_string();
    // serde reports a missing field at the struct lacking it: point at the field.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    if let Some(field) = missing {
        let path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        errors.push(path, None, message);
        return;
    }
    let found = lookup(root, e.path()).map(scalar_text);
    errors.push(path, found.as_deref(), message);
}

/// The value at a serde path inside `root`, if it is there.
fn lookup<'v>(root: &'v Value, path: &serde_path_to_error::Path) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    let mut cur = root;
    for seg in path {
        cur = match seg {
            Segment::Seq { index } => cur.get(*index)?,
            Segment::Map { key } | Segment::Enum { variant: key } => cur.get(key.as_str())?,
            Segment::Unknown => return None,
        };
    }
    Some(cur)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) => "[…]".to_owned(),
        Value::Object(_) => "{…}".to_owned(),
    }
}
