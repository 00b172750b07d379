//! Errors of spec loading and validation.

use std::fmt;
use std::path::PathBuf;

/// One problem in a spec, located by its field path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    /// Field path such as `providers[1].vpc.cidr` (empty for the whole file).
    pub path: String,
    /// The offending value as written (shortened when long), if any.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Longest value echoed back in an error.
const MAX_VALUE_CHARS: usize = 80;

impl ValidationError {
    /// A new error at `path` about `value`.
    pub fn new(path: impl Into<String>, value: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            value: value.map(shorten),
            message: message.into(),
        }
    }
}

fn shorten(v: &str) -> String {
    if v.chars().count() <= MAX_VALUE_CHARS {
        v.to_owned()
    } else {
        let head: String = v.chars().take(MAX_VALUE_CHARS).collect();
        format!("{head}… ({} chars)", v.chars().count())
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(file)"
        } else {
            &self.path
        };
        match &self.value {
            Some(v) => write!(f, "{path}: {v:?}: {}", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// All problems found in one spec, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// Record a problem.
    pub fn push(
        &mut self,
        path: impl Into<String>,
        value: Option<&str>,
        message: impl Into<String>,
    ) {
        self.0.push(ValidationError::new(path, value, message));
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The recorded problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read spec file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is larger than [`crate::spec::MAX_SPEC_BYTES`].
    #[error("{origin}: spec is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge {
        /// Where the spec came from.
        origin: String,
        /// Its size (or a lower bound).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The input is not UTF-8.
    #[error("{origin}: spec is not valid UTF-8 (byte {offset})")]
    NotUtf8 {
        /// Where the spec came from.
        origin: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The input is not well-formed YAML, or exceeds the parser's budget
    /// (aliases, nesting, node count).
    #[error("{origin}: invalid YAML{}: {message}", location.map(|(l, c)| format!(" at line {l}, column {c}")).unwrap_or_default())]
    Yaml {
        /// Where the spec came from.
        origin: String,
        /// Line and column (1-based), when known.
        location: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
    },
    /// The spec is well-formed YAML but wrong; every problem is listed.
    #[error("{origin}: {} problem(s):\n{errors}", errors.len())]
    Invalid {
        /// Where the spec came from.
        origin: String,
        /// The problems, each with its field path.
        errors: ValidationErrors,
    },
}

impl SpecError {
    /// The field-level problems, if this is a validation error.
    pub fn validation_errors(&self) -> Option<&ValidationErrors> {
        match self {
            Self::Invalid { errors, .. } => Some(errors),
            _ => None,
        }
    }
}
