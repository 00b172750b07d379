//! `harmonix`: validate, render and describe Harmonix environment specs.
//!
//! Exit codes: 0 success, 1 invalid input (or any other failure), 2 usage.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use harmonix_core::provider::Registry;
use harmonix_core::spec::{self, SpecError, ValidSpec};
use harmonix_core::{render, schema};

use output::Printer;

/// Provision AWS environments for an internal developer platform and
/// describe them to Backstage.
#[derive(Debug, Parser)]
#[command(name = "harmonix", version, about, propagate_version = true)]
struct Cli {
    /// When to color output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    /// Output format of results and errors.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check spec files; print every problem with its field path.
    Validate {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Render CloudFormation templates and parameter files into a directory.
    Render {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print the JSON Schema of the spec file format.
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.color {
        ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
        ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
        ColorChoice::Auto => {}
    }
    let printer = Printer::new(cli.output);
    let registry = Registry::builtin();
    let ok = match cli.command {
        Command::Validate { files } => validate(&printer, &registry, &files),
        Command::Render { files, out } => render_files(&printer, &registry, &files, &out),
        Command::Schema { out } => write_schema(&printer, out.as_deref()),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Load and validate every file; report each. `None` for files that failed.
fn load_all(printer: &Printer, registry: &Registry, files: &[PathBuf]) -> Vec<Option<ValidSpec>> {
    files
        .iter()
        .map(|f| match spec::load(f, registry) {
            Ok(v) => Some(v),
            Err(e) => {
                printer.spec_error(f, &e);
                None
            }
        })
        .collect()
}

fn validate(printer: &Printer, registry: &Registry, files: &[PathBuf]) -> bool {
    let loaded = load_all(printer, registry, files);
    for (f, v) in files.iter().zip(&loaded) {
        if let Some(v) = v {
            printer.valid(f, v);
        }
    }
    loaded.iter().all(Option::is_some)
}

fn render_files(printer: &Printer, registry: &Registry, files: &[PathBuf], out: &Path) -> bool {
    let loaded = load_all(printer, registry, files);
    if loaded.iter().any(Option::is_none) {
        return false;
    }
    let mut stacks = Vec::new();
    for (f, v) in files.iter().zip(loaded.iter().flatten()) {
        match render::stacks(v, registry) {
            Ok(s) => stacks.extend(s.into_iter().map(|s| (f.clone(), s))),
            Err(e) => {
                printer.error(&format!("{}: {e}", f.display()));
                return false;
            }
        }
    }
    // Two files must not render the same stack (same account, region and name).
    let mut seen = std::collections::BTreeMap::new();
    for (f, s) in &stacks {
        let key = (s.account.clone(), s.region.clone(), s.name.clone());
        if let Some(first) = seen.insert(key, f.clone()) {
            printer.error(&format!(
                "{}: stack `{}` in account {} / {} is also rendered from {}",
                f.display(),
                s.name,
                s.account,
                s.region,
                first.display()
            ));
            return false;
        }
    }
    let stacks: Vec<_> = stacks.into_iter().map(|(_, s)| s).collect();
    match render::write_stacks(&stacks, out) {
        Ok(written) => {
            printer.rendered(&stacks, &written);
            true
        }
        Err(e) => {
            printer.error(&output::error_chain(&e));
            false
        }
    }
}

fn write_schema(printer: &Printer, out: Option<&Path>) -> bool {
    let json = schema::spec_schema_json();
    match out {
        None => {
            Printer::raw(&json);
            true
        }
        Some(p) => match harmonix_core::fsio::write_atomic(p, json.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                printer.error(&output::error_chain(&e));
                false
            }
        },
    }
}

/// Used by [`output`]: the path a spec error is about.
pub(crate) fn spec_error_origin(e: &SpecError) -> Option<&str> {
    match e {
        SpecError::Invalid { origin, .. } | SpecError::Yaml { origin, .. } => Some(origin),
        _ => None,
    }
}
