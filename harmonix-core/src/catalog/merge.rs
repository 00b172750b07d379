//! Merging entities into an existing multi-document `catalog-info.yaml`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use super::entity::Entity;
use super::error::CatalogError;

/// Largest catalog file accepted, in bytes.
pub const MAX_CATALOG_BYTES: u64 = 8 * 1024 * 1024;
/// Most YAML documents accepted in one catalog file.
pub const MAX_CATALOG_DOCUMENTS: usize = 10_000;

/// Origin used in errors of [`merge`], which has no file name.
const INLINE_ORIGIN: &str = "catalog";

/// What [`write_catalog`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    /// The file did not exist and was written.
    Created,
    /// The file existed and its content changed.
    Updated,
    /// The file already held exactly the merged content; it was not
    /// written.
    Unchanged,
}

impl WriteOutcome {
    /// `created`, `updated` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

impl std::fmt::Display for WriteOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parser limits, per document. Real catalog documents are a few KiB
/// without aliases; hostile ones (alias bombs, deep nesting) stop here.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 1_000_000,
            max_aliases: 100,
            max_anchors: 100,
            max_depth: 64,
            max_nodes: 500_000,
            max_total_scalar_bytes: 8 * 1024 * 1024,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 2_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 20,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        leading_zero_numbers_as_strings: true,
    }
}

/// Merge `entities` into the catalog text `existing` (may be empty) and
/// return the new text.
///
/// The file is split into its YAML documents on the lines YAML itself
/// reserves for that (`---` and `...` at column 0), so every document
/// keeps its exact bytes. A document is *ours* when its identity (kind,
/// namespace, name; compared case-insensitively, as the Backstage catalog
/// does) is that of one of the given entities:
///
/// * ours: the keys Harmonix generates in `metadata` and `spec` are
///   overwritten in place, annotations are merged key by key, and every
///   other key (`links`, `labels`, foreign annotations, extra `spec`
///   fields, root keys such as `relations`) is kept in its position. The
///   document is written back as YAML; comments *inside* it are lost, but
///   comment lines before its `---` and after its last line are kept.
/// * every other document (and every comment between documents) is kept
///   byte for byte, line endings included.
///
/// Entities without a document are appended, in the given order (the
/// first of several entities with one identity wins). Documents Harmonix
/// writes start with `---` and use the file's line endings (CRLF when its
/// first line ends with CRLF). Lines holding only white space outside any
/// document are dropped. The output ends with a line break, is
/// deterministic, and merging it again gives the same bytes.
///
/// In a document Harmonix rewrites, foreign plain scalars with leading
/// zeros (`007`) are kept as strings, not read as numbers.
pub fn merge(existing: &str, entities: &[Entity]) -> Result<String, CatalogError> {
    merge_with_origin(existing, entities, INLINE_ORIGIN)
}

/// Merge `entities` into the catalog file at `path` (created if missing,
/// parent directories included) and write it atomically, only if its
/// content changes.
pub fn write_catalog(path: &Path, entities: &[Entity]) -> Result<WriteOutcome, CatalogError> {
    let origin = path.display().to_string();
    let existing = read_existing(path, &origin)?;
    let text = match &existing {
        None => "",
        Some(bytes) => std::str::from_utf8(bytes).map_err(|e| CatalogError::NotUtf8 {
            origin: origin.clone(),
            offset: e.valid_up_to(),
        })?,
    };
    let merged = merge_with_origin(text, entities, &origin)?;
    if existing.as_deref() == Some(merged.as_bytes()) {
        return Ok(WriteOutcome::Unchanged);
    }
    crate::fsio::write_atomic(path, merged.as_bytes())?;
    Ok(if existing.is_some() {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    })
}

/// The file's bytes, `None` when it does not exist.
fn read_existing(path: &Path, origin: &str) -> Result<Option<Vec<u8>>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_CATALOG_BYTES {
        return Err(too_large(origin, len));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CATALOG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CATALOG_BYTES {
        return Err(too_large(origin, bytes.len() as u64));
    }
    Ok(Some(bytes))
}

fn too_large(origin: &str, size: u64) -> CatalogError {
    CatalogError::TooLarge {
        origin: origin.to_owned(),
        size,
        limit: MAX_CATALOG_BYTES,
    }
}

/// [`merge`], naming `origin` in errors.
pub(crate) fn merge_with_origin(
    existing: &str,
    entities: &[Entity],
    origin: &str,
) -> Result<String, CatalogError> {
    if existing.len() as u64 > MAX_CATALOG_BYTES {
        return Err(too_large(origin, existing.len() as u64));
    }
    let nl = if uses_crlf(existing) { "\r\n" } else { "\n" };
    let chunks = split_documents(existing);
    if chunks.iter().filter(|c| c.is_document()).count() > MAX_CATALOG_DOCUMENTS {
        return Err(CatalogError::TooManyDocuments {
            origin: origin.to_owned(),
            limit: MAX_CATALOG_DOCUMENTS,
        });
    }

    // Identity of each entity → its index; the first of duplicates wins.
    let mut wanted: HashMap<Identity, usize> = HashMap::new();
    for (i, e) in entities.iter().enumerate() {
        wanted.entry(Identity::of_entity(e)).or_insert(i);
    }
    let mut placed = vec![false; entities.len()];

    let mut out = String::with_capacity(existing.len() + entities.len() * 1024);
    let mut document = 0usize;
    for chunk in &chunks {
        let raw = chunk.text(existing);
        if !chunk.is_document() {
            // Comments (or an end marker) outside any document: keep them;
            // lines that are only whitespace are dropped.
            if !raw.trim().is_empty() {
                push_piece(&mut out, raw, nl);
            }
            continue;
        }
        document += 1;
        let value = parse_document(raw, chunk.first_line, document, origin)?;
        let target = Identity::of_value(&value).and_then(|id| wanted.get(&id).copied());
        let Some(index) = target else {
            push_piece(&mut out, raw, nl);
            continue;
        };
        let Some(entity) = entities.get(index) else {
            push_piece(&mut out, raw, nl);
            continue;
        };
        if let Some(flag) = placed.get_mut(index) {
            *flag = true;
        }
        let merged = merge_entity(value, entity).map_err(|reason| CatalogError::NotAnEntity {
            origin: origin.to_owned(),
            document,
            entity: entity.entity_ref(),
            reason,
        })?;
        let yaml = to_yaml(&merged, entity, nl)?;
        push_piece(
            &mut out,
            existing
                .get(chunk.start..chunk.lead_end)
                .unwrap_or_default(),
            nl,
        );
        push_piece(&mut out, &format!("---{nl}"), nl);
        push_piece(
            &mut out,
            existing
                .get(chunk.header_end..chunk.head_end)
                .unwrap_or_default(),
            nl,
        );
        push_piece(&mut out, &yaml, nl);
        push_piece(
            &mut out,
            existing
                .get(chunk.tail_start..chunk.marker_start)
                .unwrap_or_default(),
            nl,
        );
        if chunk.marker_start < chunk.end {
            push_piece(&mut out, &format!("...{nl}"), nl);
        }
    }

    let mut appended: std::collections::HashSet<Identity> = std::collections::HashSet::new();
    for (i, entity) in entities.iter().enumerate() {
        if placed.get(i).copied().unwrap_or(false) || !appended.insert(Identity::of_entity(entity))
        {
            continue;
        }
        let yaml = to_yaml(&entity.to_value(), entity, nl)?;
        push_piece(&mut out, &format!("---{nl}{yaml}"), nl);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(nl);
    }
    Ok(out)
}

/// Append `piece`, first ending the previous piece's last line if needed.
fn push_piece(out: &mut String, piece: &str, nl: &str) {
    if piece.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(nl);
    }
    out.push_str(piece);
}

/// Whether the file's first line ends with CRLF.
fn uses_crlf(text: &str) -> bool {
    text.find('\n')
        .is_some_and(|i| i > 0 && text.as_bytes().get(i - 1) == Some(&b'\r'))
}

/// Serialize one document (no leading `---`), ending with `nl`.
///
/// Strings that could be read as another type (`"012345678901"`, `"true"`,
/// `"1.5"`) are quoted; multi-line strings are literal blocks; long
/// single-line strings (ARNs, descriptions) stay on one line rather than
/// being folded, so that they can be found with `grep`.
fn to_yaml(value: &Value, entity: &Entity, nl: &str) -> Result<String, CatalogError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    let mut yaml = serde_saphyr::to_string_with_options(value, options).map_err(|e| {
        CatalogError::Serialize {
            entity: entity.entity_ref(),
            message: e.to_string(),
        }
    })?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    if nl != "\n" {
        yaml = yaml.replace('\n', nl);
    }
    Ok(yaml)
}

fn parse_document(
    raw: &str,
    first_line: usize,
    document: usize,
    origin: &str,
) -> Result<Value, CatalogError> {
    serde_saphyr::from_str_with_options::<Value>(raw, yaml_options()).map_err(|e| {
        CatalogError::Parse {
            origin: origin.to_owned(),
            document,
            location: e.location().map(|l| {
                let line = usize::try_from(l.line()).unwrap_or(usize::MAX);
                let column = usize::try_from(l.column()).unwrap_or(usize::MAX);
                (first_line.saturating_add(line.saturating_sub(1)), column)
            }),
            message: e.render_with_options(serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
                line_offset: u64::try_from(first_line.saturating_sub(1)).unwrap_or(0),
            }),
        }
    })
}

/// Kind, namespace and name, lowercased: how the Backstage catalog tells
/// entities apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    kind: String,
    namespace: String,
    name: String,
}

impl Identity {
    fn of_entity(e: &Entity) -> Self {
        Self {
            kind: e.kind.to_lowercase(),
            namespace: e.namespace().to_lowercase(),
            name: e.name().to_lowercase(),
        }
    }

    /// The identity of a parsed document, if it looks like an entity.
    fn of_value(v: &Value) -> Option<Self> {
        let kind = v.get("kind")?.as_str()?;
        let metadata = v.get("metadata")?.as_object()?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => "default",
            Some(ns) => ns.as_str()?,
        };
        Some(Self {
            kind: kind.to_lowercase(),
            namespace: namespace.to_lowercase(),
            name: name.to_lowercase(),
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Apply `entity` to the existing document `doc`: Harmonix's keys are
/// overwritten (in place), annotations merged, everything else kept.
fn merge_entity(mut doc: Value, entity: &Entity) -> Result<Value, String> {
    let Value::Object(root) = &mut doc else {
        return Err(format!(
            "the document is {}; expected a mapping",
            type_name(&doc)
        ));
    };
    root.insert(
        "apiVersion".into(),
        Value::String(entity.api_version.clone()),
    );
    root.insert("kind".into(), Value::String(entity.kind.clone()));

    let metadata = object_at(root, "metadata")?;
    for (key, value) in &entity.metadata {
        if key == "annotations"
            && let Value::Object(ours) = value
        {
            let annotations = object_at(metadata, "annotations")
                .map_err(|r| format!("`metadata.{}", r.trim_start_matches('`')))?;
            for (k, v) in ours {
                annotations.insert(k.clone(), v.clone());
            }
        } else {
            metadata.insert(key.clone(), value.clone());
        }
    }

    if !entity.spec.is_empty() {
        let spec = object_at(root, "spec")?;
        for (key, value) in &entity.spec {
            spec.insert(key.clone(), value.clone());
        }
    }
    Ok(doc)
}

/// The mapping under `key`, created when absent or null.
fn object_at<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
) -> Result<&'m mut Map<String, Value>, String> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "`{key}` is {}; expected a mapping",
            type_name(other)
        )),
    }
}

/// One piece of the file: a YAML document with the comments around it, or
/// comments between documents. Byte ranges into the source:
/// `start ≤ lead_end ≤ header_end ≤ head_end ≤ tail_start ≤ marker_start ≤ end`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    /// First byte.
    start: usize,
    /// End of the leading comment lines (before `---` or the content).
    lead_end: usize,
    /// End of the `---` line (`lead_end` when there is none).
    header_end: usize,
    /// End of the comment lines right after the `---` line.
    head_end: usize,
    /// Start of the trailing comment lines.
    tail_start: usize,
    /// Start of the `...` end-marker line (`end` when there is none).
    marker_start: usize,
    /// One past the last byte.
    end: usize,
    /// 1-based line number of `start`.
    first_line: usize,
    /// Has a `---` line.
    header: bool,
    /// Has anything besides comments, blank lines and directives.
    content: bool,
}

impl Chunk {
    fn text<'t>(&self, source: &'t str) -> &'t str {
        source.get(self.start..self.end).unwrap_or_default()
    }
    /// Whether this is a YAML document (possibly empty), not just
    /// comments.
    fn is_document(&self) -> bool {
        self.header || self.content
    }
}

/// A line without its line break.
fn bare(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Whether `line` (without line break) is the marker `---` or `...`
/// followed by nothing or by white space.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// A line that carries no content when no content came before it in its
/// document: blank, a comment, or a directive.
fn is_trivia(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#') || line.starts_with('%')
}

/// A line kept around a document when Harmonix rewrites it: blank or a
/// comment starting at column 0 (never part of the content of a mapping
/// document's value).
fn is_outer_trivia(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with('#')
}

/// Split `text` into documents at `---` and `...` lines, as YAML does.
fn split_documents(text: &str) -> Vec<Chunk> {
    // Pass 1: chunk boundaries.
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut first_line = 1usize;
    let mut header = false;
    let mut content = false;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let mut b = bare(line);
        if offset == 0 {
            b = b.strip_prefix('\u{feff}').unwrap_or(b);
        }
        if is_marker(b, "---") {
            if header || content {
                chunks.push(shape(
                    text, start, offset, offset, first_line, header, content,
                ));
                start = offset;
                first_line = lineno;
                content = false;
            }
            header = true;
            let rest = b.get(3..).unwrap_or_default().trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                content = true;
            }
        } else if is_marker(b, "...") {
            let end = offset + line.len();
            chunks.push(shape(text, start, offset, end, first_line, header, content));
            start = end;
            first_line = lineno + 1;
            header = false;
            content = false;
        } else if !is_trivia(b) {
            content = true;
        }
        offset += line.len();
    }
    if start < text.len() {
        chunks.push(shape(
            text,
            start,
            text.len(),
            text.len(),
            first_line,
            header,
            content,
        ));
    }
    chunks
}

/// Pass 2: find the leading and trailing comment lines of a chunk
/// `[start, end)` whose end marker (if any) starts at `marker_start`.
fn shape(
    text: &str,
    start: usize,
    marker_start: usize,
    end: usize,
    first_line: usize,
    header: bool,
    content: bool,
) -> Chunk {
    let body = text.get(start..marker_start).unwrap_or_default();
    let lines: Vec<(usize, &str)> = body
        .split_inclusive('\n')
        .scan(start, |off, l| {
            let at = *off;
            *off += l.len();
            Some((at, l))
        })
        .collect();

    // Leading comment lines, up to the header or the first content line.
    let mut lead_end = marker_start;
    let mut core_first = lines.len();
    for (i, (at, l)) in lines.iter().enumerate() {
        let mut b = bare(l);
        if *at == 0 {
            b = b.strip_prefix('\u{feff}').unwrap_or(b);
        }
        if is_marker(b, "---") || !(is_outer_trivia(b) || b.starts_with('%')) {
            lead_end = *at;
            core_first = i;
            break;
        }
    }

    // Comment lines right after a `---` line without content.
    let mut header_end = lead_end;
    let mut body_first = core_first;
    if let Some((at, l)) = lines.get(core_first)
        && is_marker(bare(l), "---")
    {
        header_end = at + l.len();
        let rest = bare(l).get(3..).unwrap_or_default().trim();
        if rest.is_empty() || rest.starts_with('#') {
            body_first = core_first + 1;
            while lines
                .get(body_first)
                .is_some_and(|(_, l)| is_outer_trivia(bare(l)))
            {
                body_first += 1;
            }
        }
    }
    let head_end = lines.get(body_first).map_or(marker_start, |(at, _)| *at);

    // Trailing comment lines after the content: they must start with a
    // comment (blank lines right after the content stay with it).
    let mut tail_start = marker_start;
    if content {
        let mut first_tail = lines.len();
        for i in (body_first + 1..lines.len()).rev() {
            match lines.get(i) {
                Some((_, l)) if is_outer_trivia(bare(l)) => first_tail = i,
                _ => break,
            }
        }
        while let Some((_, l)) = lines.get(first_tail) {
            if bare(l).trim().is_empty() {
                first_tail += 1;
            } else {
                break;
            }
        }
        if let Some((at, _)) = lines.get(first_tail) {
            tail_start = *at;
        }
    }
    Chunk {
        start,
        lead_end,
        header_end,
        head_end,
        tail_start,
        marker_start,
        end,
        first_line,
        header,
        content,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::catalog::{AWS_API_VERSION, KIND_PROVIDER, MANAGED_BY_ANNOTATION};
    use serde_json::json;

    fn provider(name: &str, account: &str) -> Entity {
        let Value::Object(metadata) = json!({
            "name": name,
            "title": name,
            "annotations": { MANAGED_BY_ANNOTATION: "harmonix" },
            "awsAccount": account,
            "awsRegion": "us-east-1",
        }) else {
            unreachable!()
        };
        let Value::Object(spec) = json!({
            "type": "environment-provider",
            "lifecycle": "experimental",
            "owner": "group:platform",
        }) else {
            unreachable!()
        };
        Entity {
            api_version: AWS_API_VERSION.into(),
            kind: KIND_PROVIDER.into(),
            metadata,
            spec,
        }
    }

    fn docs(text: &str) -> Vec<Value> {
        serde_saphyr::from_multiple::<Value>(text)
            .unwrap()
            .into_iter()
            .filter(|v| !v.is_null())
            .collect()
    }

    const COMPONENT: &str = "# the web app\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web   # inline comment\nspec:\n  type: service\n  owner: team-a\n  lifecycle: production\n";

    #[test]
    fn empty_input_gives_only_our_documents() {
        let e = [provider("a", "123456789012"), provider("b", "123456789012")];
        for input in ["", "\n", "\n\n  \n"] {
            let out = merge(input, &e).unwrap();
            assert!(
                out.starts_with("---\napiVersion: aws.backstage.io/v1alpha\n"),
                "{out}"
            );
            assert!(out.ends_with('\n'));
            let d = docs(&out);
            assert_eq!(d.len(), 2);
            assert_eq!(d[0]["metadata"]["name"], "a");
            assert_eq!(d[1]["metadata"]["name"], "b");
            assert_eq!(out.matches("---\n").count(), 2);
        }
        assert_eq!(merge("", &[]).unwrap(), "");
    }

    #[test]
    fn only_comments_are_kept_and_ours_appended() {
        let input = "# Catalog of team X\n# keep me\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(input), "{out}");
        assert_eq!(docs(&out).len(), 1);
        assert_eq!(merge(&out, &[provider("a", "123456789012")]).unwrap(), out);
    }

    #[test]
    fn foreign_documents_are_byte_identical_and_merge_is_idempotent() {
        let input = format!(
            "{COMPONENT}---\n# a location\nkind: Location\napiVersion: backstage.io/v1alpha1\nmetadata: {{name: more}}\nspec:\n  targets: ['./a.yaml']\n"
        );
        let e = [provider("a", "123456789012")];
        let once = merge(&input, &e).unwrap();
        assert!(once.starts_with(&input), "{once}");
        let twice = merge(&once, &e).unwrap();
        assert_eq!(once, twice);
        assert_eq!(docs(&once).len(), 3);
    }

    #[test]
    fn matched_document_keeps_foreign_fields_in_place() {
        let input = "# ours, older\n---\n# kept too\n\napiVersion: aws.backstage.io/v1alpha\nkind: awsenvironmentprovider\nmetadata:\n  name: A\n  links:\n    - url: https://example.com\n      title: Docs\n  awsAccount: '999999999999'\n  annotations:\n    example.com/team: x\n    harmonix.dev/managed-by: someone\nspec:\n  owner: group:old\n  system: shop\nrelations: []\n# trailing note\n";
        let out = merge(input, &[provider("a", "012345678901")]).unwrap();
        let d = docs(&out);
        assert_eq!(d.len(), 1, "{out}");
        let doc = &d[0];
        assert_eq!(doc["kind"], KIND_PROVIDER);
        assert_eq!(doc["metadata"]["name"], "a");
        assert_eq!(doc["metadata"]["awsAccount"], "012345678901");
        assert_eq!(doc["metadata"]["links"][0]["title"], "Docs");
        assert_eq!(doc["metadata"]["annotations"]["example.com/team"], "x");
        assert_eq!(
            doc["metadata"]["annotations"][MANAGED_BY_ANNOTATION],
            "harmonix"
        );
        assert_eq!(doc["spec"]["owner"], "group:platform");
        assert_eq!(doc["spec"]["system"], "shop");
        assert_eq!(doc["spec"]["type"], "environment-provider");
        assert_eq!(doc["relations"], json!([]));
        // Key order: existing keys stay where they were, new ones follow.
        let keys: Vec<&String> = doc["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "name",
                "links",
                "awsAccount",
                "annotations",
                "title",
                "awsRegion"
            ]
        );
        // Comments around the document survive; the account id stays quoted.
        assert!(
            out.starts_with(
                "# ours, older\n---\n# kept too\n\napiVersion: aws.backstage.io/v1alpha\n"
            ),
            "{out}"
        );
        assert!(out.ends_with("# trailing note\n"), "{out}");
        assert!(out.contains("awsAccount: \"012345678901\""), "{out}");
        assert_eq!(merge(&out, &[provider("a", "012345678901")]).unwrap(), out);
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let input = COMPONENT.replace('\n', "\r\n");
        let out = merge(&input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(&input));
        assert!(
            !out.replace("\r\n", "").contains('\n'),
            "LF without CR in {out:?}"
        );
        assert_eq!(docs(&out).len(), 2);
        assert_eq!(merge(&out, &[provider("a", "123456789012")]).unwrap(), out);
        // An ours document in a CRLF file is rewritten with CRLF.
        let changed = merge(&out, &[provider("a", "210987654321")]).unwrap();
        assert!(!changed.replace("\r\n", "").contains('\n'));
        assert!(changed.contains("210987654321"));
    }

    #[test]
    fn end_markers_are_respected() {
        // A document after `...` needs no `---`; replacing the document
        // before it must keep the marker or the two would fuse.
        let input = "apiVersion: aws.backstage.io/v1alpha\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\n...\n# between\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: loc\nspec:\n  target: ./x.yaml\n...\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        let d = docs(&out);
        assert_eq!(d.len(), 2, "{out}");
        assert_eq!(d[0]["metadata"]["awsAccount"], "123456789012");
        assert_eq!(d[1]["kind"], "Location");
        assert!(out.ends_with("# between\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: loc\nspec:\n  target: ./x.yaml\n...\n"), "{out}");
        assert_eq!(merge(&out, &[provider("a", "123456789012")]).unwrap(), out);
    }

    #[test]
    fn separator_detection_is_exact() {
        // `---x` and ` ---` are not separators; `--- ` with content is.
        let input = "a: |\n  ---\n  text\nb: ---x\n--- {kind: Location, apiVersion: backstage.io/v1alpha1, metadata: {name: l}}\n";
        let chunks = split_documents(input);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(input));
        assert_eq!(docs(&out).len(), 3);
    }

    #[test]
    fn leading_separator_directives_and_bom() {
        let input = "\u{feff}%YAML 1.2\n---\napiVersion: aws.backstage.io/v1alpha\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(
            out.starts_with("\u{feff}%YAML 1.2\n---\napiVersion"),
            "{out}"
        );
        assert_eq!(merge(&out, &[provider("a", "123456789012")]).unwrap(), out);
    }

    #[test]
    fn non_mapping_documents_are_kept() {
        let input = "--- just a string\n---\n- a\n- b\n---\n---\n# empty document above\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(input), "{out}");
        assert_eq!(merge(&out, &[provider("a", "123456789012")]).unwrap(), out);
    }

    #[test]
    fn matched_document_with_wrong_shape_is_an_error() {
        let input =
            "apiVersion: x/y\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\nspec: [1, 2]\n";
        let err = merge(input, &[provider("a", "123456789012")]).unwrap_err();
        let CatalogError::NotAnEntity {
            document,
            entity,
            reason,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*document, 1);
        assert_eq!(entity, "awsenvironmentprovider:default/a");
        assert!(reason.contains("`spec` is a sequence"), "{reason}");

        let input = "apiVersion: x/y\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\n  annotations: text\n";
        let err = merge(input, &[provider("a", "123456789012")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`metadata.annotations` is a string; expected a mapping"),
            "{err}"
        );

        // A null spec is just empty.
        let input = "apiVersion: x/y\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\nspec:\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert_eq!(docs(&out)[0]["spec"]["owner"], "group:platform");
    }

    #[test]
    fn namespace_and_case_decide_identity() {
        let input = "apiVersion: x/y\nkind: AWSEnvironmentProvider\nmetadata:\n  name: a\n  namespace: other\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(input));
        assert_eq!(docs(&out).len(), 2);
        let input = "apiVersion: x/y\nkind: AWSENVIRONMENTPROVIDER\nmetadata:\n  name: A\n  namespace: Default\n";
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert_eq!(docs(&out).len(), 1);
    }

    #[test]
    fn parse_errors_name_document_and_line() {
        let input = format!("{COMPONENT}---\nkind: Location\nmetadata: [unclosed\n");
        let err = merge(&input, &[]).unwrap_err();
        let CatalogError::Parse {
            document, location, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*document, 2);
        assert_eq!(*location, Some((12, 11)));
        assert!(err.to_string().contains("line 12, column 11"), "{err}");
    }

    #[test]
    fn alias_bombs_and_huge_inputs_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(
                &[
                    c.to_string(),
                    ": &".into(),
                    c.to_string(),
                    " [".into(),
                    refs,
                    "]\n".into(),
                ]
                .concat(),
            );
            prev = c;
        }
        let err = merge(&bomb, &[]).unwrap_err();
        assert!(
            matches!(err, CatalogError::Parse { document: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("alias"), "{err}");

        let huge = "#".repeat(usize::try_from(MAX_CATALOG_BYTES).unwrap() + 1);
        let err = merge(&huge, &[]).unwrap_err();
        assert!(matches!(err, CatalogError::TooLarge { .. }), "{err}");

        let many = "---\n".repeat(MAX_CATALOG_DOCUMENTS + 1);
        let err = merge(&many, &[]).unwrap_err();
        assert!(
            matches!(err, CatalogError::TooManyDocuments { .. }),
            "{err}"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let mut e = provider("a", "012345678901");
        for (k, v) in [
            ("t", "true"),
            ("n", "null"),
            ("f", "1.5"),
            ("y", "yes"),
            ("o", "0o17"),
        ] {
            e.metadata.insert(k.into(), Value::String(v.into()));
        }
        let out = merge("", std::slice::from_ref(&e)).unwrap();
        let d = docs(&out);
        assert_eq!(Value::Object(e.metadata.clone()), d[0]["metadata"]);
        // Also as YAML 1.1 / 1.2 core parsers see it: quoted.
        assert!(out.contains("awsAccount: \"012345678901\""), "{out}");
        assert!(out.contains("t: \"true\""), "{out}");
    }

    #[test]
    fn long_strings_stay_on_one_line_and_multi_line_ones_are_blocks() {
        let mut e = provider("a", "123456789012");
        let arn = format!(
            "arn:aws:lambda:eu-central-1:210987654321:function:{}",
            "x".repeat(60)
        );
        let long = "A long description with spaces that is well over eighty characters long, to see it is not folded.";
        e.metadata
            .insert("kubectlLambdaArn".into(), Value::String(arn.clone()));
        e.metadata
            .insert("description".into(), Value::String(long.into()));
        e.metadata.insert(
            "notes".into(),
            Value::String("line one\nline two: with colon\n".into()),
        );
        let out = merge("", std::slice::from_ref(&e)).unwrap();
        assert!(
            out.contains(&format!("\n  kubectlLambdaArn: {arn}\n")),
            "{out}"
        );
        assert!(out.contains(&format!("\n  description: {long}\n")), "{out}");
        assert!(
            out.contains("\n  notes: |\n    line one\n    line two: with colon\n"),
            "{out}"
        );
        assert_eq!(docs(&out)[0]["metadata"], Value::Object(e.metadata));
    }

    #[test]
    fn appended_in_given_order_and_duplicates_once() {
        let e = [
            provider("b", "123456789012"),
            provider("a", "123456789012"),
            provider("b", "123456789012"),
        ];
        let out = merge(COMPONENT, &e).unwrap();
        let names: Vec<String> = docs(&out)
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["web", "b", "a"]);
    }

    #[test]
    fn missing_final_newline_is_added() {
        let input = COMPONENT.trim_end();
        let out = merge(input, &[]).unwrap();
        assert_eq!(out, COMPONENT);
        let out = merge(input, &[provider("a", "123456789012")]).unwrap();
        assert!(out.starts_with(COMPONENT));
        assert_eq!(docs(&out).len(), 2);
    }

    #[test]
    fn write_catalog_reports_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/catalog-info.yaml");
        let e = [provider("a", "123456789012")];
        assert_eq!(write_catalog(&path, &e).unwrap(), WriteOutcome::Created);
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(write_catalog(&path, &e).unwrap(), WriteOutcome::Unchanged);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        let e2 = [provider("a", "210987654321")];
        assert_eq!(write_catalog(&path, &e2).unwrap(), WriteOutcome::Updated);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("210987654321")
        );

        std::fs::write(&path, b"a: \xff\n").unwrap();
        let err = write_catalog(&path, &e).unwrap_err();
        assert!(
            matches!(err, CatalogError::NotUtf8 { offset: 3, .. }),
            "{err}"
        );
    }
}
