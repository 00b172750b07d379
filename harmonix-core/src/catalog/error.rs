//! Errors of building catalog entities and of merging and writing
//! `catalog-info.yaml`.

use std::path::PathBuf;

use crate::fsio::WriteError;
use crate::spec::ProviderKind;

/// Why catalog entities could not be built, merged or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The existing catalog file could not be read.
    #[error("cannot read catalog file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The merged catalog file could not be written (the old file, if any,
    /// is unchanged).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The existing catalog is larger than
    /// [`MAX_CATALOG_BYTES`](crate::catalog::MAX_CATALOG_BYTES).
    #[error("{origin}: catalog is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge {
        /// Where the catalog came from.
        origin: String,
        /// Its size (or a lower bound).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The existing catalog is not UTF-8.
    #[error("{origin}: catalog is not valid UTF-8 (byte {offset})")]
    NotUtf8 {
        /// Where the catalog came from.
        origin: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The existing catalog holds more YAML documents than
    /// [`MAX_CATALOG_DOCUMENTS`](crate::catalog::MAX_CATALOG_DOCUMENTS).
    #[error("{origin}: catalog has more than {limit} YAML documents")]
    TooManyDocuments {
        /// Where the catalog came from.
        origin: String,
        /// The limit.
        limit: usize,
    },
    /// A document of the existing catalog is not well-formed YAML, or
    /// exceeds the parser's budget (aliases, nesting, node count).
    #[error("{origin}: document {document} is not valid YAML: {message}{}", missing_location(*location, message))]
    Parse {
        /// Where the catalog came from.
        origin: String,
        /// Number of the document in the file (1-based, in file order;
        /// comments outside documents do not count).
        document: usize,
        /// Line and column in the file (1-based), when known.
        location: Option<(usize, usize)>,
        /// The parser's message (with file line numbers).
        message: String,
    },
    /// A document Harmonix would update has the identity of one of its
    /// entities but not the shape of an entity.
    #[error("{origin}: document {document} ({entity}) cannot be updated: {reason}")]
    NotAnEntity {
        /// Where the catalog came from.
        origin: String,
        /// Number of the document in the file (1-based).
        document: usize,
        /// The entity reference (`kind:namespace/name`) it matched.
        entity: String,
        /// What is wrong, e.g. `` `spec` is a sequence; expected a mapping``.
        reason: String,
    },
    /// No provider implementation is registered for a provider's kind.
    #[error(
        "providers: `{provider}` has kind `{kind}`, but no provider implementation is registered for it"
    )]
    UnknownKind {
        /// The provider (spec `name`).
        provider: String,
        /// Its kind.
        kind: ProviderKind,
    },
    /// An environment names a provider that the spec does not define.
    #[error(
        "environments: `{environment}` names provider `{provider}`, which the spec does not define; defined: {defined}"
    )]
    UnknownProvider {
        /// The environment (spec `name`).
        environment: String,
        /// The missing provider name.
        provider: String,
        /// The providers the spec defines, comma-separated.
        defined: String,
    },
    /// An entity could not be serialized to YAML.
    #[error("cannot serialize entity {entity} to YAML: {message}")]
    Serialize {
        /// The entity reference.
        entity: String,
        /// The serializer's message.
        message: String,
    },
}

/// ` (line L, column C)` when `message` does not already say where.
fn missing_location(location: Option<(usize, usize)>, message: &str) -> String {
    match location {
        Some((l, c)) if !message.contains(&format!("line {l}")) => {
            format!(" (line {l}, column {c})")
        }
        _ => String::new(),
    }
}
