//! The commands that talk to AWS: plan, apply, destroy, status, catalog,
//! bootstrap.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool, SessionOptions};
use harmonix_core::engine::apply::Outcome;
use harmonix_core::engine::events::Event;
use harmonix_core::engine::plan::Backoff;
use harmonix_core::engine::retained::DestroyOptions;
use harmonix_core::engine::state::Drift;
use harmonix_core::engine::{DeployReport, DeploymentPlan, Engine, EngineOptions, LockOptions};
use harmonix_core::provider::Registry;
use harmonix_core::spec::SpecSet;
use harmonix_core::{Error, error_chain};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Format;
use crate::output::Printer;
use crate::progress::Progress;

const OK: Style = AnsiColor::Green.on_default().bold();
const BAD: Style = AnsiColor::Red.on_default().bold();
const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

/// What a destroy does with the data the templates keep (audit table, KMS
/// key, log groups, buckets, secrets; the Aurora cluster's final snapshot).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DataArgs {
    /// Delete the kept data with the stacks instead of keeping it (buckets
    /// are emptied; the Aurora cluster goes without a final snapshot).
    #[arg(long)]
    pub delete_data: bool,
    /// Allow --delete-data for environments whose lifecycle is
    /// `production` (refused without it).
    #[arg(long, requires = "delete_data")]
    pub delete_production_data: bool,
}

impl DataArgs {
    /// The engine's options.
    pub fn options(self) -> DestroyOptions {
        DestroyOptions {
            delete_data: self.delete_data,
            delete_production_data: self.delete_production_data,
        }
    }
}

/// How to reach AWS and how the engine runs.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Endpoint for every AWS service (e.g. a local emulator); default:
    /// the standard AWS configuration (`AWS_ENDPOINT_URL`).
    #[arg(long, env = "HARMONIX_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,
    /// Role assumed with the base credentials before each environment's
    /// `environmentRole` (ARN).
    #[arg(long, env = "HARMONIX_PIPELINE_ROLE", value_name = "ARN")]
    pipeline_role: Option<String>,
    /// External id passed when assuming the environment role (a secret:
    /// prefer the environment variable).
    #[arg(
        long,
        env = "HARMONIX_EXTERNAL_ID",
        hide_env_values = true,
        value_name = "ID"
    )]
    external_id: Option<String>,
    /// Source identity set on the role sessions.
    #[arg(long, env = "HARMONIX_SOURCE_IDENTITY", value_name = "NAME")]
    source_identity: Option<String>,
    /// Role session length in seconds (900 to 43200); credentials are
    /// refreshed before they expire.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    session_duration: u64,
    /// Who runs Harmonix, in role session names and audit records
    /// (default: GITLAB_USER_LOGIN, GITHUB_ACTOR or USER).
    #[arg(long, env = "HARMONIX_CALLER")]
    caller: Option<String>,
    /// Stacks planned or executed at the same time per account/region.
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// AWS requests per second per account/region (all clients together).
    #[arg(long, default_value_t = 10.0, value_name = "N")]
    api_rate: f64,
    /// AWS requests allowed at once before the rate applies.
    #[arg(long, default_value_t = 20, value_name = "N")]
    api_burst: u32,
    /// Lease of the environment lock in seconds (renewed while running).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    lock_lease: u64,
    /// Do not take the environment lock.
    #[arg(long)]
    no_lock: bool,
    /// Do not write audit records.
    #[arg(long)]
    no_audit: bool,
    /// Limit for applying, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    timeout: u64,
    /// First and largest delay between status polls, in milliseconds.
    #[arg(long, default_values_t = [500, 10_000], num_args = 2, value_names = ["MIN", "MAX"], hide = true)]
    poll_ms: Vec<u64>,
}

impl EngineArgs {
    fn aws_options(&self) -> AwsOptions {
        AwsOptions {
            endpoint_url: self.endpoint_url.clone(),
            region: None,
            pipeline_role: self.pipeline_role.clone(),
            session: SessionOptions {
                duration: Duration::from_secs(self.session_duration),
                external_id: self.external_id.clone(),
                source_identity: self.source_identity.clone(),
            },
            caller: self.caller.clone(),
            max_attempts: None,
            api_budget: ApiBudget {
                rate: self.api_rate,
                burst: self.api_burst,
            },
        }
    }

    fn engine_options(&self, command: String, cancel: CancellationToken) -> EngineOptions {
        let mut o = EngineOptions {
            concurrency: self.concurrency.max(1),
            audit: !self.no_audit,
            command,
            lock: LockOptions {
                enabled: !self.no_lock,
                lease: Duration::from_secs(self.lock_lease.max(1)),
                ..LockOptions::default()
            },
            ..EngineOptions::default()
        };
        let poll = Backoff {
            initial: Duration::from_millis(self.poll_ms.first().copied().unwrap_or(500)),
            max: Duration::from_millis(self.poll_ms.get(1).copied().unwrap_or(10_000)),
        };
        o.plan.poll = poll;
        o.apply.poll = poll;
        o.apply.timeout = Duration::from_secs(self.timeout.max(1));
        o.apply.cancel = cancel;
        o
    }
}

/// Everything a command needs.
pub struct Context {
    pub printer: Printer,
    pub format: Format,
    pub registry: Registry,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Cancel on the first Ctrl-C; exit at once on the second.
fn watch_ctrl_c(cancel: CancellationToken, progress: &'static Progress) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            progress.line(
                "interrupted: no new stack will start; waiting for running ones (Ctrl-C again to quit now)",
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                progress.clear();
                std::process::exit(130);
            }
        }
    });
}

fn load_specs(ctx: &Context, files: &[PathBuf]) -> Option<SpecSet> {
    let mut set = SpecSet::new();
    let mut ok = true;
    for f in files {
        match harmonix_core::spec::load(f, &ctx.registry) {
            Ok(v) => set.push(f.display().to_string(), v),
            Err(e) => {
                ctx.printer.spec_error(f, &e);
                ok = false;
            }
        }
    }
    ok.then_some(set)
}

async fn engine(
    ctx: &Context,
    args: &EngineArgs,
    command: String,
    cancel: CancellationToken,
    entities: bool,
) -> Result<Engine, Error> {
    let pool = ClientPool::load(args.aws_options()).await?;
    let mut opts = args.engine_options(command, cancel);
    opts.entities = entities;
    Ok(Engine::new(pool, ctx.registry.clone(), opts))
}

fn command_line() -> String {
    let mut parts: Vec<String> = std::env::args().collect();
    if let Some(first) = parts.first_mut() {
        *first = "harmonix".to_owned();
    }
    // Never record a secret given on the command line.
    let mut redact_next = false;
    for p in &mut parts {
        if redact_next {
            *p = "***".to_owned();
            redact_next = false;
        } else if p == "--external-id" {
            redact_next = true;
        } else if p.starts_with("--external-id=") {
            *p = "--external-id=***".to_owned();
        }
    }
    parts.join(" ")
}

fn report_error(ctx: &Context, e: &Error) {
    match ctx.format {
        Format::Json => {
            let line = json!({
                "level": "error",
                "code": e.code(),
                "stack": e.stack(),
                "message": error_chain(e),
            });
            let mut out = anstream::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
        Format::Text => ctx.printer.error(&error_chain(e)),
    }
}

fn leak(p: Progress) -> &'static Progress {
    Box::leak(Box::new(p))
}

/// `harmonix plan FILE… [-o plan.json] [--destroy [--delete-data]]`.
pub fn plan(
    ctx: &Context,
    args: &EngineArgs,
    files: &[PathBuf],
    out: Option<&Path>,
    destroy: bool,
    data: DestroyOptions,
) -> bool {
    let Some(specs) = load_specs(ctx, files) else {
        return false;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer.error(&e);
            return false;
        }
    };
    let progress = leak(Progress::new(ctx.format));
    let result = rt.block_on(async {
        let engine = engine(ctx, args, command_line(), CancellationToken::new(), true).await?;
        let sink = |e: &Event| progress.event(e);
        let plan = if destroy {
            engine.plan_destroy_with(&specs, data, &sink).await?
        } else {
            engine.plan(&specs, &sink).await?
        };
        if let Some(path) = out {
            plan.save(path)?;
        } else if let Err(e) = engine.discard(&plan).await {
            // A plan only shown is not kept: its change sets go.
            progress.line(&format!(
                "warning: could not delete the plan's change sets: {e}"
            ));
        }
        Ok::<_, Error>(plan)
    });
    progress.clear();
    match result {
        Ok(plan) => {
            print_plan(ctx, &plan, out);
            true
        }
        Err(e) => {
            report_error(ctx, &e);
            false
        }
    }
}

fn print_plan(ctx: &Context, plan: &DeploymentPlan, out: Option<&Path>) {
    match ctx.format {
        Format::Json => {
            let line = json!({
                "level": "result",
                "command": "plan",
                "kind": plan.kind,
                "noChanges": plan.is_noop(),
                "summary": plan.summary(),
                "planFile": out.map(|p| p.display().to_string()),
                "contentHash": plan.content_hash,
            });
            let mut o = anstream::stdout().lock();
            let _ = writeln!(o, "{line}");
        }
        Format::Text => {
            let mut o = anstream::stdout().lock();
            let _ = write!(o, "{}", plan.render_diff(true));
            if let Some(p) = out {
                let _ = writeln!(
                    o,
                    "{DIM}Saved the plan to {}; apply exactly these changes with `harmonix apply {}`.{DIM:#}",
                    p.display(),
                    p.display()
                );
            }
        }
    }
}

/// What `apply` was given.
pub enum ApplyInput {
    /// A saved plan file.
    Plan(PathBuf),
    /// Spec files: plan, confirm, apply.
    Specs(Vec<PathBuf>),
}

/// Whether `inputs` is one saved plan file (JSON with `targets` and
/// `contentHash`) rather than spec files.
pub fn classify(inputs: &[PathBuf]) -> ApplyInput {
    if let [one] = inputs
        && one.extension().is_some_and(|e| e == "json")
        && let Ok(text) = std::fs::read_to_string(one)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && v.get("targets").is_some()
        && v.get("contentHash").is_some()
    {
        return ApplyInput::Plan(one.clone());
    }
    ApplyInput::Specs(inputs.to_vec())
}

/// Ask on the terminal; `Ok(false)` when declined.
fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err(
            "refusing to change AWS without confirmation: standard input is not a terminal; pass --yes (CI) or apply a reviewed plan file".to_owned(),
        );
    }
    let mut err = anstream::stderr().lock();
    let _ = write!(
        err,
        "{BOLD}{question}{BOLD:#} Only 'yes' will be accepted: "
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(line.trim() == "yes")
}

/// `harmonix apply (PLAN.json | FILE…)` and `harmonix destroy FILE…`
/// (`destroy`: what it does with the kept data).
pub fn apply(
    ctx: &Context,
    args: &EngineArgs,
    input: ApplyInput,
    destroy: Option<DestroyOptions>,
    yes: bool,
    catalog: Option<&Path>,
) -> bool {
    let specs = match &input {
        ApplyInput::Specs(files) => match load_specs(ctx, files) {
            Some(s) => Some(s),
            None => return false,
        },
        ApplyInput::Plan(_) => None,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer.error(&e);
            return false;
        }
    };
    let progress = leak(Progress::new(ctx.format));
    let cancel = CancellationToken::new();
    let result = rt.block_on(async {
        watch_ctrl_c(cancel.clone(), progress);
        let engine = engine(ctx, args, command_line(), cancel.clone(), catalog.is_some()).await?;
        let sink = |e: &Event| progress.event(e);
        let plan = match (&input, &specs) {
            (ApplyInput::Plan(path), _) => DeploymentPlan::load(path)?,
            (ApplyInput::Specs(_), Some(specs)) => {
                let plan = match destroy {
                    Some(data) => engine.plan_destroy_with(specs, data, &sink).await?,
                    None => engine.plan(specs, &sink).await?,
                };
                progress.clear();
                print_plan(ctx, &plan, None);
                if !plan.is_noop() && !yes {
                    let q = match destroy {
                        Some(d) if d.delete_data => {
                            "Destroy these environments and delete their data?"
                        }
                        Some(_) => "Destroy these environments?",
                        None => "Apply these changes?",
                    };
                    let answer = confirm(q);
                    if !matches!(answer, Ok(true)) {
                        // Not applied: leave no change sets behind.
                        if let Err(e) = engine.discard(&plan).await {
                            progress.line(&format!(
                                "warning: could not delete the plan's change sets: {e}"
                            ));
                        }
                    }
                    match answer {
                        Ok(true) => {}
                        Ok(false) => return Ok(None),
                        Err(msg) => {
                            return Err(Error::Engine(
                                harmonix_core::engine::error::EngineError::InvalidInput {
                                    path: "--yes".to_owned(),
                                    problem: msg,
                                },
                            ));
                        }
                    }
                }
                plan
            }
            (ApplyInput::Specs(_), None) => return Ok(None),
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let report = engine.apply(&plan, catalog, &sink).await?;
        Ok(Some(report))
    });
    progress.clear();
    match result {
        Ok(None) => {
            ctx.printer.error("not applied: the answer was not 'yes'");
            false
        }
        Ok(Some(report)) => print_report(ctx, &report),
        Err(e) => {
            report_error(ctx, &e);
            false
        }
    }
}

fn print_report(ctx: &Context, report: &DeployReport) -> bool {
    let ok = report.succeeded();
    match ctx.format {
        Format::Json => {
            let line = json!({
                "level": "result",
                "command": report.kind.as_str(),
                "succeeded": ok,
                "report": report,
            });
            let mut o = anstream::stdout().lock();
            let _ = writeln!(o, "{line}");
        }
        Format::Text => {
            let mut o = anstream::stdout().lock();
            let mut counts = std::collections::BTreeMap::<&str, usize>::new();
            for s in report.stacks() {
                let word = match &s.outcome {
                    Outcome::Created => "created",
                    Outcome::Updated => "updated",
                    Outcome::Deleted => "deleted",
                    Outcome::Unchanged => "unchanged",
                    Outcome::Failed { .. } => "failed",
                    Outcome::Skipped { .. } => "skipped",
                    Outcome::Cancelled => "cancelled",
                    _ => "other",
                };
                *counts.entry(word).or_default() += 1;
            }
            let list = counts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let what = if report.kind == harmonix_core::engine::PlanKind::Destroy {
                "Destroy"
            } else {
                "Apply"
            };
            if ok {
                let _ = writeln!(o, "{OK}{what} complete{OK:#}: {list}.");
            } else {
                let _ = writeln!(o, "{BAD}{what} failed{BAD:#}: {list}.");
            }
            for s in report.stacks() {
                match &s.outcome {
                    Outcome::Failed { reason } => {
                        let _ = writeln!(o, "  {BAD}✗{BAD:#} {}: {reason}", s.name);
                    }
                    Outcome::Skipped { because } => {
                        let _ = writeln!(
                            o,
                            "  - {}: skipped because {because} did not succeed",
                            s.name
                        );
                    }
                    Outcome::Cancelled => {
                        let _ = writeln!(
                            o,
                            "  - {}: not started (cancelled); run again to continue",
                            s.name
                        );
                    }
                    _ => {}
                }
            }
            for k in &report.kept {
                let _ = writeln!(o, "  kept: {} (stack {})", k.describe(), k.stack);
            }
            if !report.kept.is_empty() {
                let _ = writeln!(
                    o,
                    "{DIM}Kept resources stay, and are billed, until deleted; a new create of the environment needs them deleted first.{DIM:#}"
                );
            }
            if let Some(err) = &report.catalog_error {
                let _ = writeln!(o, "  {BAD}✗{BAD:#} catalog: {err}");
            }
            if let Some(c) = &report.catalog {
                let _ = writeln!(
                    o,
                    "Catalog {} {} ({} entities).",
                    c.path,
                    c.outcome,
                    report.entities.len()
                );
            }
            for w in &report.warnings {
                let _ = writeln!(o, "warning: {w}");
            }
            let total: u64 = report.requests.values().sum();
            let _ = writeln!(
                o,
                "{DIM}AWS requests: {total} ({}){DIM:#}",
                report
                    .requests
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    ok
}

/// `harmonix status FILE…`.
pub fn status(ctx: &Context, args: &EngineArgs, files: &[PathBuf]) -> bool {
    let Some(specs) = load_specs(ctx, files) else {
        return false;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer.error(&e);
            return false;
        }
    };
    let result = rt.block_on(async {
        let engine = engine(ctx, args, command_line(), CancellationToken::new(), true).await?;
        engine.status(&specs).await
    });
    let targets = match result {
        Ok(t) => t,
        Err(e) => {
            report_error(ctx, &e);
            return false;
        }
    };
    let mut o = anstream::stdout().lock();
    for t in &targets {
        match ctx.format {
            Format::Json => {
                for s in &t.stacks {
                    let line = json!({
                        "level": "status", "account": t.account, "region": t.region,
                        "stack": s.name,
                        "status": s.state.as_ref().map(|x| x.status.clone()),
                        "drift": s.drift, "lastUpdated": s.last_updated,
                    });
                    let _ = writeln!(o, "{line}");
                }
            }
            Format::Text => {
                let _ = writeln!(o, "{BOLD}account {} / {}{BOLD:#}", t.account, t.region);
                for s in &t.stacks {
                    let status = s
                        .state
                        .as_ref()
                        .map_or("NOT DEPLOYED", |x| x.status.as_str());
                    let drift = match s.drift {
                        Drift::InSync => format!("{OK}in sync{OK:#}"),
                        Drift::Drifted => {
                            format!("{BAD}differs from the spec{BAD:#} (plan to see how)")
                        }
                        Drift::Missing => "missing".to_owned(),
                        _ => "unknown".to_owned(),
                    };
                    let _ = writeln!(
                        o,
                        "  {}  {status}  {drift}  {DIM}{}{DIM:#}",
                        s.name,
                        s.last_updated
                            .as_deref()
                            .map_or(String::new(), |t| format!("last updated {t}"))
                    );
                }
            }
        }
    }
    true
}

/// `harmonix catalog FILE… --out catalog-info.yaml`.
pub fn catalog(ctx: &Context, args: &EngineArgs, files: &[PathBuf], out: &Path) -> bool {
    let Some(specs) = load_specs(ctx, files) else {
        return false;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer.error(&e);
            return false;
        }
    };
    let progress = Progress::new(ctx.format);
    let result = rt.block_on(async {
        let engine = engine(ctx, args, command_line(), CancellationToken::new(), true).await?;
        let sink = |e: &Event| progress.event(e);
        engine.catalog(&specs, Some(out), &sink).await
    });
    match result {
        Ok((entities, written)) => {
            if ctx.format == Format::Text {
                let mut o = anstream::stdout().lock();
                if let Some(w) = written {
                    let _ = writeln!(
                        o,
                        "Catalog {} {} ({} entities).",
                        w.path,
                        w.outcome,
                        entities.len()
                    );
                }
            } else if let Some(w) = written {
                let line = json!({"level": "result", "command": "catalog", "path": w.path, "outcome": w.outcome, "entities": entities.len()});
                let mut o = anstream::stdout().lock();
                let _ = writeln!(o, "{line}");
            }
            true
        }
        Err(e) => {
            report_error(ctx, &e);
            false
        }
    }
}

/// `harmonix bootstrap FILE…`.
pub fn bootstrap(ctx: &Context, args: &EngineArgs, files: &[PathBuf]) -> bool {
    let Some(specs) = load_specs(ctx, files) else {
        return false;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer.error(&e);
            return false;
        }
    };
    let result = rt.block_on(async {
        let engine = engine(ctx, args, command_line(), CancellationToken::new(), true).await?;
        engine.bootstrap(&specs).await
    });
    match result {
        Ok(done) => {
            let mut o = anstream::stdout().lock();
            for d in done {
                match ctx.format {
                    Format::Json => {
                        let _ = writeln!(
                            o,
                            "{}",
                            json!({
                                "level": "ok",
                                "lockTable": d,
                                "assetsBucket": d.split_once('/').map(|(a, r)| harmonix_core::engine::assets::bucket_name(a, r)),
                                "bootstrapStack": harmonix_core::provider::BOOTSTRAP_STACK,
                            })
                        );
                    }
                    Format::Text => {
                        let bucket = d
                            .split_once('/')
                            .map(|(a, r)| harmonix_core::engine::assets::bucket_name(a, r))
                            .unwrap_or_default();
                        let _ = writeln!(
                            o,
                            "{OK}ok{OK:#} {d}: lock table, assets bucket {bucket}, stack {}",
                            harmonix_core::provider::BOOTSTRAP_STACK
                        );
                    }
                }
            }
            true
        }
        Err(e) => {
            report_error(ctx, &e);
            false
        }
    }
}
