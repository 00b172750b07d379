//! Printing results and errors as colored text or JSON lines.

use std::io::Write;
use std::path::{Path, PathBuf};

use anstyle::{AnsiColor, Style};
use harmonix_core::provider::StackDefinition;
use harmonix_core::spec::{SpecError, ValidSpec};
use serde_json::json;

use crate::Format;

const ERROR: Style = AnsiColor::Red.on_default().bold();
const PATH: Style = AnsiColor::Yellow.on_default().bold();
const OK: Style = AnsiColor::Green.on_default().bold();
const DIM: Style = Style::new().dimmed();

/// Writes results to stdout and errors to stderr in the chosen format.
#[derive(Debug)]
pub struct Printer {
    format: Format,
}

/// `error` followed by its sources, each once (`a: b: c`).
pub use harmonix_core::error_chain;

impl Printer {
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    fn json(line: &serde_json::Value) {
        let mut out = anstream::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    pub fn raw(text: &str) {
        let mut out = anstream::stdout().lock();
        let _ = out.write_all(text.as_bytes());
    }

    pub fn error(&self, message: &str) {
        match self.format {
            Format::Json => Self::json(&json!({ "level": "error", "message": message })),
            Format::Text => {
                let mut err = anstream::stderr().lock();
                let _ = writeln!(err, "{ERROR}error{ERROR:#}: {message}");
            }
        }
    }

    pub fn spec_error(&self, file: &Path, e: &SpecError) {
        let origin =
            crate::spec_error_origin(e).map_or_else(|| file.display().to_string(), str::to_owned);
        match (self.format, e.validation_errors()) {
            (Format::Json, Some(errors)) => {
                for v in errors {
                    Self::json(&json!({
                        "level": "error", "file": origin, "path": v.path,
                        "value": v.value, "message": v.message,
                    }));
                }
            }
            (Format::Json, None) => Self::json(&json!({
                "level": "error", "file": origin, "path": null, "message": error_chain(e),
            })),
            (Format::Text, Some(errors)) => {
                let mut err = anstream::stderr().lock();
                let n = errors.len();
                let _ = writeln!(
                    err,
                    "{ERROR}error{ERROR:#}: {origin}: {n} problem{}",
                    if n == 1 { "" } else { "s" }
                );
                for v in errors {
                    let path = if v.path.is_empty() { "(file)" } else { &v.path };
                    match &v.value {
                        Some(val) => {
                            let _ = writeln!(err, "  {PATH}{path}{PATH:#} {DIM}={DIM:#} {val:?}");
                        }
                        None => {
                            let _ = writeln!(err, "  {PATH}{path}{PATH:#}");
                        }
                    }
                    let _ = writeln!(err, "      {}", v.message);
                }
            }
            (Format::Text, None) => self.error(&error_chain(e)),
        }
    }

    pub fn valid(&self, file: &Path, spec: &ValidSpec) {
        let providers = spec.providers().len();
        let environments = spec.environments().len();
        match self.format {
            Format::Json => Self::json(&json!({
                "level": "ok", "file": file.display().to_string(),
                "providers": providers, "environments": environments,
            })),
            Format::Text => {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(
                    out,
                    "{OK}ok{OK:#} {}: {providers} provider{}, {environments} environment{}",
                    file.display(),
                    if providers == 1 { "" } else { "s" },
                    if environments == 1 { "" } else { "s" },
                );
            }
        }
    }

    pub fn rendered(&self, stacks: &[StackDefinition], files: &[PathBuf]) {
        match self.format {
            Format::Json => {
                for s in stacks {
                    Self::json(&json!({
                        "level": "ok", "stack": s.name, "provider": s.provider,
                        "account": s.account, "region": s.region, "hash": s.content_hash(),
                        "resources": s.template.resources.len(),
                    }));
                }
            }
            Format::Text => {
                let mut out = anstream::stdout().lock();
                for s in stacks {
                    let _ = writeln!(
                        out,
                        "{OK}rendered{OK:#} {} {DIM}({} resources, {}/{}){DIM:#}",
                        s.name,
                        s.template.resources.len(),
                        s.account,
                        s.region
                    );
                }
                let _ = writeln!(out, "{} files written", files.len());
            }
        }
    }
}
