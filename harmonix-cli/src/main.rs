//! `harmonix`: validate, render, plan, apply and describe Harmonix
//! environments.
//!
//! Exit codes: 0 success, 1 invalid input or any other failure (a failed
//! stack, a stale plan, a held lock), 2 usage.

/// mimalloc: the engine allocates many small JSON values while rendering;
/// it renders about 2.5× faster than with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod deploy;
mod init;
mod output;
mod progress;

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
    /// Log what Harmonix does to standard error: -v info, -vv debug
    /// (AWS SDK at info), -vvv trace (AWS SDK at debug). `RUST_LOG` adds
    /// directives. Credentials never appear: the SDK's request signing and
    /// request dumps stay below the levels that would show them.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
    /// Show what applying would change: a change set per stack that
    /// differs from its spec, as a diff; optionally saved for `apply`.
    Plan {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Save the plan to this file (JSON) for `harmonix apply FILE`.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Plan the deletion of the environments instead.
        #[arg(long)]
        destroy: bool,
        #[command(flatten)]
        data: deploy::DataArgs,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Deploy: execute a saved plan exactly, or plan spec files, confirm
    /// and apply; then write the catalog.
    Apply {
        /// A plan file from `harmonix plan -o`, or spec files.
        #[arg(required = true, value_name = "PLAN_OR_FILES")]
        inputs: Vec<PathBuf>,
        /// Do not ask for confirmation (CI).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Catalog file to write after a successful apply.
        #[arg(long, default_value = "catalog-info.yaml", value_name = "FILE")]
        catalog: PathBuf,
        /// Do not write the catalog.
        #[arg(long, conflicts_with = "catalog")]
        no_catalog: bool,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Delete the environments' stacks, dependents first, after a plan and
    /// confirmation.
    Destroy {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not ask for confirmation (CI).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        data: deploy::DataArgs,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Show each stack's status, whether it matches its spec, and its last
    /// update.
    Status {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Write the catalog entities of deployed environments.
    Catalog {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The catalog file (merged: other documents and fields are kept).
        #[arg(long, short, default_value = "catalog-info.yaml")]
        out: PathBuf,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Prepare every target account/region once (before the first apply,
    /// when the pipeline role may not create them): the lock table, the
    /// assets bucket for templates over CloudFormation's inline limit, and
    /// the `harmonix-bootstrap` stack of account-level settings.
    Bootstrap {
        /// Spec files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        engine: deploy::EngineArgs,
    },
    /// Write the repository of a new environment: spec, GitLab pipeline
    /// (validate, plan, apply + catalog commit), catalog-info.yaml, README.
    Init(init::InitArgs),
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
    init_logging(cli.verbose);
    let printer = Printer::new(cli.output);
    let registry = Registry::builtin();
    let ctx = deploy::Context {
        printer: Printer::new(cli.output),
        format: cli.output,
        registry: registry.clone(),
    };
    let ok = match cli.command {
        Command::Validate { files } => validate(&printer, &registry, &files),
        Command::Render { files, out } => render_files(&printer, &registry, &files, &out),
        Command::Schema { out } => write_schema(&printer, out.as_deref()),
        Command::Plan {
            files,
            out,
            destroy,
            data,
            engine,
        } => {
            if data.delete_data && !destroy {
                printer.error("--delete-data plans a destroy: add --destroy");
                return ExitCode::from(2);
            }
            deploy::plan(
                &ctx,
                &engine,
                &files,
                out.as_deref(),
                destroy,
                data.options(),
            )
        }
        Command::Apply {
            inputs,
            yes,
            catalog,
            no_catalog,
            engine,
        } => deploy::apply(
            &ctx,
            &engine,
            deploy::classify(&inputs),
            None,
            yes,
            (!no_catalog).then_some(catalog.as_path()),
        ),
        Command::Destroy {
            files,
            yes,
            data,
            engine,
        } => deploy::apply(
            &ctx,
            &engine,
            deploy::ApplyInput::Specs(files),
            Some(data.options()),
            yes,
            None,
        ),
        Command::Status { files, engine } => deploy::status(&ctx, &engine, &files),
        Command::Catalog { files, out, engine } => deploy::catalog(&ctx, &engine, &files, &out),
        Command::Bootstrap { files, engine } => deploy::bootstrap(&ctx, &engine, &files),
        Command::Init(args) => init::run(&printer, cli.output, &registry, &args),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Logging to stderr for `-v`…`-vvv` (and `RUST_LOG`). The AWS SDK's
/// signing (`aws_sigv4`), request dumps (`aws_smithy_runtime`,
/// `aws_smithy_http_client`, `hyper`) and credential loading (`aws_config`)
/// are capped below the levels at which they print canonical requests,
/// headers (session tokens) or the resolved identity (access key ids):
/// those caps come last, so no `RUST_LOG` lifts them. Colours only on a
/// terminal.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let base = match verbose {
        0 if std::env::var_os("RUST_LOG").is_none() => return,
        0 => "warn",
        1 => "warn,harmonix_core=info,harmonix=info",
        2 => "warn,harmonix_core=debug,harmonix=debug,aws_config=info",
        _ => "info,harmonix_core=trace,harmonix=trace,aws_config=info",
    };
    init_with(base);

    fn init_with(base: &str) {
        let user = std::env::var("RUST_LOG").unwrap_or_default();
        let directives = format!(
            "{base},{user},aws_sigv4=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_smithy_http_client=info,aws_config=info,hyper=info,hyper_util=info,h2=info,rustls=info"
        );
        let filter = EnvFilter::try_new(directives.trim_matches(','))
            .unwrap_or_else(|_| EnvFilter::new(base));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(true)
            .try_init();
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
    let mut ok = true;
    for (f, v) in files.iter().zip(&loaded) {
        let Some(v) = v else {
            ok = false;
            continue;
        };
        // Rendering is deterministic and offline: a stack over one of
        // CloudFormation's quotas is a validation failure too.
        match render::stacks(v, registry) {
            Ok(_) => printer.valid(f, v),
            Err(e) => {
                printer.error(&format!("{}: {e}", f.display()));
                ok = false;
            }
        }
    }
    ok
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
