//! `harmonix init`: the repository of a new environment, as the platform
//! creates it for the pipeline flow (a repository with the provider's
//! settings and a CI pipeline that assumes a role, deploys and writes
//! `catalog-info.yaml`).
//!
//! It writes into `--out`:
//!
//! * `harmonix.yaml`, the spec, from the flags and a per-kind section
//!   (templates in `init/`), checked with the same validation as
//!   `harmonix validate` before anything is written;
//! * `.gitlab-ci.yml`: `validate`, `plan` (merge requests and the default
//!   branch; `plan.json` as an artifact), `apply` (default branch; manual
//!   for production) that applies the plan and commits the catalog back;
//! * `catalog-info.yaml`: the entities as known before the first deploy,
//!   which the apply job fills in;
//! * `README.md` and `.gitignore`.
//!
//! Existing files are left alone unless `--force`; every file is written
//! atomically. Nothing is written when any check fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use harmonix_core::catalog;
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::spec::{self, ProviderKind, SpecError, ValidSpec};
use serde_json::json;

use crate::output::Printer;

/// The spec file name in the generated repository.
pub const SPEC_FILE: &str = "harmonix.yaml";
/// Account used when `--account` is not given: the example account of the
/// AWS documentation (and the local emulator's default).
pub const EXAMPLE_ACCOUNT: &str = "123456789012";

const SPEC_TEMPLATE: &str = include_str!("init/harmonix.yaml");
const CI_TEMPLATE: &str = include_str!("init/gitlab-ci.yml");
const README_TEMPLATE: &str = include_str!("init/README.md");
const GITIGNORE: &str = include_str!("init/gitignore");
const CATALOG_HEADER: &str = "\
# Backstage entities of this environment, written by harmonix: by
# `harmonix init` before the first deployment, then by the pipeline's apply
# job after each one, with the deployed values. Documents and fields that
# harmonix does not own are kept.
";

/// The section of the spec specific to a kind, indented for the provider.
fn kind_section(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Ecs => include_str!("init/kinds/ecs.yaml"),
        ProviderKind::EcsEc2 => include_str!("init/kinds/ecs-ec2.yaml"),
        ProviderKind::Eks => include_str!("init/kinds/eks.yaml"),
        ProviderKind::Serverless => include_str!("init/kinds/serverless.yaml"),
        ProviderKind::BackstagePlatform => include_str!("init/kinds/backstage-platform.yaml"),
        ProviderKind::VmImage => include_str!("init/kinds/vm-image.yaml"),
    }
}

fn kind_help() -> String {
    format!(
        "Provider kind: {}",
        ProviderKind::ALL.map(ProviderKind::as_str).join(", ")
    )
}

/// `harmonix init` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    #[arg(long, value_name = "KIND", help = kind_help())]
    pub kind: ProviderKind,
    /// Name of the environment provider: lowercase letters, digits and `-`
    /// (its stack is `<prefix>-<name>-environment`).
    #[arg(long)]
    pub name: String,
    /// Directory of the repository to write (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Target AWS account id, 12 digits (default: 123456789012, the
    /// example account of the AWS documentation: set yours).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Target AWS region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Owning Backstage group or user.
    #[arg(long, default_value = "group:platform", value_name = "REF")]
    pub owner: String,
    /// Prefix of every AWS resource name.
    #[arg(long, default_value = spec::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Description shown in Backstage (default: the kind's summary).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Short name of the environment (stage), e.g. `dev`, `qa`, `prod`
    /// (default `dev`, or `prod` with --prod). `prod` makes the apply job
    /// manual.
    #[arg(long = "env", value_name = "SHORT_NAME")]
    pub environment: Option<String>,
    /// A production environment: the apply job waits for a person to start
    /// it, and deployments are marked as requiring approval.
    #[arg(long)]
    pub prod: bool,
    /// Role the pipeline assumes in the target account (default
    /// `arn:<partition>:iam::<account>:role/<prefix>-envprovisioning-role`).
    #[arg(long, value_name = "ARN")]
    pub environment_role: Option<String>,
    /// Backstage's role (default `…:role/<prefix>-platform-role` in the
    /// target account).
    #[arg(long, value_name = "ARN")]
    pub platform_role: Option<String>,
    /// The CI runner's role (default `…:role/<prefix>-pipeline-role` in the
    /// target account).
    #[arg(long, value_name = "ARN")]
    pub pipeline_role: Option<String>,
    /// CIDR of the new VPC.
    #[arg(long, default_value = spec::DEFAULT_VPC_CIDR, value_name = "CIDR")]
    pub vpc_cidr: String,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

/// One problem with a flag's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagProblem {
    /// The flag, e.g. `--account`.
    pub flag: &'static str,
    /// The value the problem is about.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Why `harmonix init` wrote nothing (or stopped writing).
#[derive(Debug)]
pub enum InitError {
    /// Flag values that make no valid spec.
    Flags(Vec<FlagProblem>),
    /// Files that exist (without `--force`).
    Exists(Vec<PathBuf>),
    /// `--out` exists and is not a directory.
    NotADirectory(PathBuf),
    /// A file could not be written.
    Write(harmonix_core::fsio::WriteError),
    /// A bug: a template that does not render.
    Internal(String),
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flags(problems) => {
                let lines: Vec<String> = problems.iter().map(FlagProblem::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            Self::Exists(paths) => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "refusing to overwrite {}: pass --force to replace {}",
                    list.join(", "),
                    if paths.len() == 1 { "it" } else { "them" }
                )
            }
            Self::NotADirectory(p) => {
                write!(f, "--out {}: exists and is not a directory", p.display())
            }
            Self::Write(e) => f.write_str(&harmonix_core::error_chain(e)),
            Self::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for InitError {}

impl std::fmt::Display for FlagProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} {v:?}: {}", self.flag, self.message),
            None => write!(f, "{}: {}", self.flag, self.message),
        }
    }
}

/// The files of a repository, before they are written.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// Whether the apply job is manual (production).
    pub production: bool,
    /// `(file name in the repository, content)`, in writing order.
    pub files: Vec<(&'static str, String)>,
}

/// The values the templates are filled with (already resolved from flags
/// and defaults).
struct Values {
    kind: ProviderKind,
    name: String,
    prefix: String,
    description: String,
    owner: String,
    account: String,
    region: String,
    environment_role: String,
    platform_role: String,
    pipeline_role: String,
    vpc_cidr: String,
    environment: String,
    production: bool,
    summary: &'static str,
}

impl Values {
    fn from_args(args: &InitArgs, summary: &'static str) -> Self {
        let environment = args
            .environment
            .clone()
            .unwrap_or_else(|| if args.prod { "prod" } else { "dev" }.to_owned());
        let production = args.prod || environment == "prod";
        let account = args
            .account
            .clone()
            .unwrap_or_else(|| EXAMPLE_ACCOUNT.to_owned());
        let partition = harmonix_core::provider::common::partition(&args.region);
        let role = |given: &Option<String>, suffix: &str| {
            given.clone().unwrap_or_else(|| {
                format!(
                    "arn:{partition}:iam::{account}:role/{}-{suffix}",
                    args.prefix
                )
            })
        };
        Self {
            kind: args.kind,
            name: args.name.clone(),
            prefix: args.prefix.clone(),
            description: args
                .description
                .clone()
                .unwrap_or_else(|| format!("{summary} ({environment})")),
            owner: args.owner.clone(),
            environment_role: role(&args.environment_role, "envprovisioning-role"),
            platform_role: role(&args.platform_role, "platform-role"),
            pipeline_role: role(&args.pipeline_role, "pipeline-role"),
            account,
            region: args.region.clone(),
            vpc_cidr: args.vpc_cidr.clone(),
            environment,
            production,
            summary,
        }
    }

    /// The name of the `AWSEnvironment` entity (it must differ from the
    /// provider's).
    fn environment_name(&self) -> String {
        format!("{}-env", self.name)
    }
}

/// A YAML scalar holding exactly `s`: plain when that is unambiguous (a
/// word starting with a letter, of letters, digits and `._/:@+-`, not
/// ending with `:`, not a YAML 1.1 boolean or null), otherwise a JSON
/// string, which YAML reads as a double-quoted scalar. No value can change
/// the document's structure.
fn quoted(s: &str) -> String {
    const RESERVED: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:@+-".contains(c))
        && !s.ends_with(':')
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// Replace every `{{key}}` in `template`; an unknown or unclosed key is an
/// error (a template bug), never a panic.
fn fill(template: &str, vars: &BTreeMap<&str, String>, what: &str) -> Result<String, InitError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| InitError::Internal(format!("{what}: unclosed `{{{{`")))?;
        let key = &after[..end];
        let value = vars
            .get(key)
            .ok_or_else(|| InitError::Internal(format!("{what}: no value for `{{{{{key}}}}}`")))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Build every file of the repository in memory and validate the spec.
pub fn scaffold(args: &InitArgs, registry: &Registry) -> Result<Scaffold, InitError> {
    let Some(provider) = registry.get(args.kind) else {
        let registered: Vec<&str> = registry.kinds().map(ProviderKind::as_str).collect();
        return Err(InitError::Flags(vec![FlagProblem {
            flag: "--kind",
            value: Some(args.kind.to_string()),
            message: format!(
                "no provider for this kind in this build; available: {}",
                registered.join(", ")
            ),
        }]));
    };
    let v = Values::from_args(args, provider.summary());
    let spec_text = spec_text(&v)?;
    let spec = match spec::parse_str(&spec_text, SPEC_FILE)
        .and_then(|file| spec::validate(file, registry, SPEC_FILE))
    {
        Ok(s) => s,
        Err(e) => return Err(InitError::Flags(flag_problems(&e, args))),
    };
    let catalog_text = catalog_text(&spec, registry)?;
    let shared = shared_vars(&v);
    let ci = fill(CI_TEMPLATE, &shared, ".gitlab-ci.yml")?;
    let readme = fill(README_TEMPLATE, &shared, "README.md")?;
    Ok(Scaffold {
        production: v.production,
        files: vec![
            (SPEC_FILE, spec_text),
            (".gitlab-ci.yml", ci),
            ("catalog-info.yaml", catalog_text),
            ("README.md", readme),
            (".gitignore", GITIGNORE.to_owned()),
        ],
    })
}

fn spec_text(v: &Values) -> Result<String, InitError> {
    let mut vars = BTreeMap::new();
    vars.insert("kind", v.kind.as_str().to_owned());
    vars.insert("name", quoted(&v.name));
    vars.insert("prefix", quoted(&v.prefix));
    vars.insert("description", quoted(&v.description));
    vars.insert("owner", quoted(&v.owner));
    vars.insert(
        "lifecycle",
        if v.production {
            "production"
        } else {
            "experimental"
        }
        .to_owned(),
    );
    vars.insert("account", quoted(&v.account));
    vars.insert("region", quoted(&v.region));
    vars.insert("environment_role", quoted(&v.environment_role));
    vars.insert("platform_role", quoted(&v.platform_role));
    vars.insert("pipeline_role", quoted(&v.pipeline_role));
    vars.insert("vpc_cidr", quoted(&v.vpc_cidr));
    vars.insert("environment", quoted(&v.environment));
    vars.insert("environment_name", quoted(&v.environment_name()));
    vars.insert(
        "environment_description",
        quoted(&format!("Stage {} of {}", v.environment, v.name)),
    );
    vars.insert("level", if v.production { "3" } else { "1" }.to_owned());
    vars.insert("approval", v.production.to_string());
    vars.insert(
        "kubernetes_version",
        quoted(spec::DEFAULT_KUBERNETES_VERSION),
    );
    for role in ["frontend", "backend"] {
        vars.insert(
            if role == "frontend" {
                "image_parameter_frontend"
            } else {
                "image_parameter_backend"
            },
            quoted(&format!("/{}/{}/images/{role}", v.prefix, v.name)),
        );
    }
    vars.insert("domain", quoted(&format!("{}.example.com", v.name)));
    vars.insert(
        "certificate_arn",
        quoted(&format!(
            "arn:{}:acm:{}:{}:certificate/00000000-0000-0000-0000-000000000000",
            harmonix_core::provider::common::partition(&v.region),
            v.region,
            v.account
        )),
    );
    let section = fill(kind_section(v.kind), &vars, "kind section")?;
    vars.insert("kind_section", section);
    fill(SPEC_TEMPLATE, &vars, SPEC_FILE)
}

/// Values of the pipeline and the README: only validated ones (the spec
/// passed), quoted where they stand alone as YAML values.
fn shared_vars(v: &Values) -> BTreeMap<&'static str, String> {
    let mut vars = BTreeMap::new();
    vars.insert("name", v.name.clone());
    vars.insert("kind", v.kind.as_str().to_owned());
    vars.insert("summary", v.summary.to_owned());
    vars.insert("account", v.account.clone());
    vars.insert("region", v.region.clone());
    vars.insert("owner", v.owner.clone());
    vars.insert("environment", v.environment.clone());
    vars.insert("spec_file", SPEC_FILE.to_owned());
    vars.insert("pipeline_role", quoted(&v.pipeline_role));
    vars.insert(
        "apply_when",
        if v.production { "manual" } else { "on_success" }.to_owned(),
    );
    vars.insert(
        "apply_mode",
        if v.production {
            "manual: production"
        } else {
            "automatic"
        }
        .to_owned(),
    );
    vars
}

/// The catalog before the first deployment: the entities from the spec,
/// with the names the provider derives where outputs are missing.
fn catalog_text(spec: &ValidSpec, registry: &Registry) -> Result<String, InitError> {
    let entities = catalog::entities(spec, registry, &StackOutputs::new())
        .map_err(|e| InitError::Internal(format!("catalog: {}", harmonix_core::error_chain(&e))))?;
    let merged = catalog::merge(CATALOG_HEADER, &entities)
        .map_err(|e| InitError::Internal(format!("catalog: {}", harmonix_core::error_chain(&e))))?;
    Ok(merged)
}

/// The flag a spec field path comes from, and whether the value was
/// derived (not given as that flag).
fn flag_of(path: &str, args: &InitArgs) -> (&'static str, bool) {
    let field = path
        .split_once('.')
        .map_or(path, |(_, rest)| rest)
        .split(['.', '['])
        .next()
        .unwrap_or_default();
    let provider = path.starts_with("providers[");
    let environment = path.starts_with("environments[");
    match field {
        "name" => ("--name", environment),
        "prefix" => ("--prefix", false),
        "description" => ("--description", args.description.is_none()),
        "owner" => ("--owner", false),
        "account" => ("--account", args.account.is_none()),
        "region" => ("--region", false),
        "environmentRole" => ("--environment-role", args.environment_role.is_none()),
        "platformRole" => ("--platform-role", args.platform_role.is_none()),
        "pipelineRole" => ("--pipeline-role", args.pipeline_role.is_none()),
        "vpc" => ("--vpc-cidr", false),
        "shortName" => ("--env", args.environment.is_none()),
        "serverless" | "platform" if provider => ("--env", true),
        "providers" if environment => ("--name", true),
        _ => ("--kind", true),
    }
}

/// Validation problems of the generated spec, as problems of the flags
/// their values came from. A problem of a derived value (a default role
/// ARN) is left out when a flag it derives from has one of its own.
fn flag_problems(e: &SpecError, args: &InitArgs) -> Vec<FlagProblem> {
    let Some(errors) = e.validation_errors() else {
        return vec![FlagProblem {
            flag: "--kind",
            value: Some(args.kind.to_string()),
            message: format!(
                "the generated {SPEC_FILE} does not parse: {}",
                harmonix_core::error_chain(e)
            ),
        }];
    };
    let mut found: Vec<(FlagProblem, bool)> = Vec::new();
    for err in errors {
        let (flag, derived) = flag_of(&err.path, args);
        let message = if derived {
            format!("{} (in {SPEC_FILE} at `{}`)", err.message, err.path)
        } else {
            err.message.clone()
        };
        let problem = FlagProblem {
            flag,
            value: err.value.clone(),
            message,
        };
        if !found.iter().any(|(p, _)| *p == problem) {
            found.push((problem, derived));
        }
    }
    // A value derived from a flag with a problem of its own repeats it.
    let direct = |flag: &str| found.iter().any(|(p, d)| !d && p.flag == flag);
    let role_source_bad = ["--account", "--region", "--prefix"]
        .iter()
        .any(|f| direct(f));
    let keep: Vec<bool> = found
        .iter()
        .map(|(p, derived)| {
            !derived || !(direct(p.flag) || (p.flag.ends_with("-role") && role_source_bad))
        })
        .collect();
    found
        .into_iter()
        .zip(keep)
        .filter_map(|((p, _), keep)| keep.then_some(p))
        .collect()
}

/// Write the files into `out`: refuses (writing nothing) when one exists
/// and `force` is off. Returns the paths written.
pub fn write(scaffold: &Scaffold, out: &Path, force: bool) -> Result<Vec<PathBuf>, InitError> {
    if out.exists() && !out.is_dir() {
        return Err(InitError::NotADirectory(out.to_owned()));
    }
    let paths: Vec<PathBuf> = scaffold.files.iter().map(|(n, _)| out.join(n)).collect();
    if !force {
        let existing: Vec<PathBuf> = paths
            .iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .cloned()
            .collect();
        if !existing.is_empty() {
            return Err(InitError::Exists(existing));
        }
    }
    for (path, (_, content)) in paths.iter().zip(&scaffold.files) {
        harmonix_core::fsio::write_atomic(path, content.as_bytes()).map_err(InitError::Write)?;
    }
    Ok(paths)
}

/// `harmonix init`: scaffold, write, report.
pub fn run(printer: &Printer, format: crate::Format, registry: &Registry, args: &InitArgs) -> bool {
    let result = scaffold(args, registry).and_then(|s| Ok((write(&s, &args.out, args.force)?, s)));
    match result {
        Ok((paths, s)) => {
            report(format, args, &s, &paths);
            true
        }
        Err(InitError::Flags(problems)) => {
            for p in &problems {
                printer.error(&p.to_string());
            }
            false
        }
        Err(e) => {
            printer.error(&e.to_string());
            false
        }
    }
}

fn report(format: crate::Format, args: &InitArgs, s: &Scaffold, paths: &[PathBuf]) {
    match format {
        crate::Format::Json => {
            let line = json!({
                "level": "result",
                "command": "init",
                "kind": args.kind.as_str(),
                "name": args.name,
                "production": s.production,
                "files": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            });
            Printer::raw(&format!("{line}\n"));
        }
        crate::Format::Text => {
            let mut text = format!(
                "Wrote the repository of {} ({}) to {}:\n",
                args.name,
                args.kind,
                args.out.display()
            );
            for p in paths {
                let _ = writeln!(text, "  {}", p.display());
            }
            let apply = if s.production {
                "manual (production)"
            } else {
                "automatic"
            };
            let _ = writeln!(
                text,
                "Pipeline: validate, plan (merge requests, default branch), apply on the default branch ({apply})."
            );
            if args.account.is_none() {
                let _ = writeln!(
                    text,
                    "note: no --account: {SPEC_FILE} names the example account {EXAMPLE_ACCOUNT}; set yours."
                );
            }
            let _ = writeln!(
                text,
                "Next: commit and push it to GitLab, and set the CI/CD variable HARMONIX_CATALOG_TOKEN (a project access token with write_repository)."
            );
            Printer::raw(&text);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::Value;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: InitArgs,
    }

    fn parse(extra: &[&str]) -> Result<InitArgs, clap::Error> {
        let mut argv = vec!["init", "--name", "payments-dev", "--out", "repo"];
        argv.extend_from_slice(extra);
        Cmd::try_parse_from(argv).map(|c| c.args)
    }

    fn args(kind: &str, extra: &[&str]) -> InitArgs {
        let mut all = vec!["--kind", kind];
        all.extend_from_slice(extra);
        parse(&all).unwrap()
    }

    fn file<'a>(s: &'a Scaffold, name: &str) -> &'a str {
        &s.files.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    fn problems(a: &InitArgs) -> Vec<FlagProblem> {
        match scaffold(a, &Registry::builtin()) {
            Err(InitError::Flags(p)) => p,
            other => panic!("expected flag problems, got {other:?}"),
        }
    }

    #[test]
    fn every_registered_kind_scaffolds_a_spec_that_validates() {
        let registry = Registry::builtin();
        let kinds: Vec<ProviderKind> = registry.kinds().collect();
        for k in [
            ProviderKind::Ecs,
            ProviderKind::EcsEc2,
            ProviderKind::Eks,
            ProviderKind::Serverless,
        ] {
            assert!(kinds.contains(&k), "{k} is registered");
        }
        for kind in kinds {
            let s = scaffold(
                &args(kind.as_str(), &["--account", "210987654321"]),
                &registry,
            )
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let names: Vec<&str> = s.files.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                names,
                [
                    "harmonix.yaml",
                    ".gitlab-ci.yml",
                    "catalog-info.yaml",
                    "README.md",
                    ".gitignore"
                ]
            );
            for (name, text) in &s.files {
                assert!(
                    !text.contains("{{"),
                    "{kind}: {name} has a placeholder left"
                );
            }
            // The written text itself passes `harmonix validate`'s checks.
            let valid = spec::parse_str(file(&s, SPEC_FILE), SPEC_FILE)
                .and_then(|f| spec::validate(f, &registry, SPEC_FILE))
                .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
            let p = valid.provider("payments-dev").unwrap();
            assert_eq!(p.kind, kind);
            assert_eq!(p.account.as_str(), "210987654321");
            assert_eq!(
                p.environment_role,
                "arn:aws:iam::210987654321:role/opa-envprovisioning-role"
            );
            assert_eq!(valid.environments()[0].short_name, "dev");
            // The pipeline is YAML with the three stages.
            let ci = yaml(file(&s, ".gitlab-ci.yml"));
            assert_eq!(
                ci["stages"],
                serde_json::json!(["validate", "plan", "apply"])
            );
            assert_eq!(ci["apply"]["rules"][0]["when"], "on_success", "{kind}");
            assert_eq!(
                ci["variables"]["HARMONIX_PIPELINE_ROLE"],
                "arn:aws:iam::210987654321:role/opa-pipeline-role"
            );
            // The catalog names the provider and its stack.
            let catalog = file(&s, "catalog-info.yaml");
            assert!(
                catalog.contains("kind: AWSEnvironmentProvider"),
                "{catalog}"
            );
            assert!(
                catalog.contains("stackName: opa-payments-dev-environment"),
                "{catalog}"
            );
            assert!(file(&s, "README.md").contains(kind.as_str()));
        }
    }

    #[test]
    fn an_unregistered_kind_is_refused_naming_the_flag() {
        let p = match scaffold(&args("ecs", &[]), &Registry::empty()) {
            Err(InitError::Flags(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].flag, "--kind");
        assert!(
            p[0].to_string().contains("--kind \"ecs\": no provider"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn production_makes_the_apply_job_manual() {
        let registry = Registry::builtin();
        for (extra, env, manual) in [
            (&[][..], "dev", false),
            (&["--env", "qa"][..], "qa", false),
            (&["--prod"][..], "prod", true),
            (&["--env", "prod"][..], "prod", true),
            (&["--env", "live", "--prod"][..], "live", true),
        ] {
            let s = scaffold(&args("ecs", extra), &registry).unwrap();
            assert_eq!(s.production, manual, "{extra:?}");
            let ci = yaml(file(&s, ".gitlab-ci.yml"));
            let when = if manual { "manual" } else { "on_success" };
            assert_eq!(ci["apply"]["rules"][0]["when"], when, "{extra:?}");
            assert_eq!(ci["apply"]["environment"]["name"], env);
            let spec = yaml(file(&s, SPEC_FILE));
            assert_eq!(spec["environments"][0]["shortName"], env);
            assert_eq!(
                spec["environments"][0]["deploymentRequiresApproval"],
                manual
            );
            let lifecycle = if manual { "production" } else { "experimental" };
            assert_eq!(spec["providers"][0]["lifecycle"], lifecycle);
        }
    }

    #[test]
    fn an_unknown_kind_is_a_usage_error_listing_the_kinds() {
        let e = parse(&["--kind", "lambda"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--kind"), "{msg}");
        assert!(msg.contains("unknown provider kind `lambda`"), "{msg}");
        assert!(
            msg.contains("allowed: ecs, ecs-ec2, eks, serverless"),
            "{msg}"
        );
        assert!(e.use_stderr());
        let e = Cmd::try_parse_from(["init", "--kind", "ecs", "--out", "x"]).unwrap_err();
        assert!(e.to_string().contains("--name"), "{e}");
    }

    #[test]
    fn bad_values_are_reported_on_their_flags() {
        for (extra, flag, value) in [
            (&["--account", "12345"][..], "--account", "12345"),
            (&["--region", "us-east-9"][..], "--region", "us-east-9"),
            (&["--owner", "not a ref"][..], "--owner", "not a ref"),
            (&["--prefix", "Bad_Prefix"][..], "--prefix", "Bad_Prefix"),
            (
                &["--vpc-cidr", "10.0.0.0/8"][..],
                "--vpc-cidr",
                "10.0.0.0/8",
            ),
            (&["--env", "Prod!"][..], "--env", "Prod!"),
            (
                &["--environment-role", "arn:aws:iam::999999999999:role/x"][..],
                "--environment-role",
                "arn:aws:iam::999999999999:role/x",
            ),
        ] {
            let mut a = vec!["--kind", "ecs"];
            a.extend_from_slice(extra);
            let p = problems(&parse(&a).unwrap());
            assert!(
                p.iter()
                    .any(|p| p.flag == flag && p.value.as_deref() == Some(value)),
                "{extra:?}: {p:?}"
            );
            // Derived role ARNs do not repeat the problem of --account,
            // --region or --prefix.
            assert!(
                p.iter()
                    .all(|p| p.flag == flag || !p.flag.ends_with("-role")),
                "{extra:?}: {p:?}"
            );
        }
        let p = problems(
            &Cmd::try_parse_from(["init", "--kind", "ecs", "--name", "Bad Name", "--out", "x"])
                .unwrap()
                .args,
        );
        assert!(p.iter().any(|p| p.flag == "--name"), "{p:?}");
    }

    #[test]
    fn values_cannot_change_the_yaml_structure() {
        let tricky = "x\"\n  - kind: eks\nproviders: [] # yes: no";
        let s = scaffold(
            &args("ecs", &["--description", tricky]),
            &Registry::builtin(),
        )
        .unwrap();
        let spec = yaml(file(&s, SPEC_FILE));
        assert_eq!(spec["providers"].as_array().unwrap().len(), 1);
        assert_eq!(spec["providers"][0]["description"], tricky);
        for v in [
            "yes",
            "No",
            "null",
            "true",
            "group:",
            "123",
            "1e3",
            "-x",
            "a #b",
            "a: b",
            "ünï",
            "group:platform",
            "arn:aws:iam::1:role/a",
            "",
        ] {
            let text = format!("key: {}\n", quoted(v));
            assert_eq!(yaml(&text)["key"], v, "{text}");
        }
    }

    #[test]
    fn fill_reports_template_bugs_without_panicking() {
        let vars = BTreeMap::from([("a", "1".to_owned())]);
        assert_eq!(fill("x{{a}}y", &vars, "t").unwrap(), "x1y");
        assert!(
            matches!(fill("{{b}}", &vars, "t"), Err(InitError::Internal(m)) if m.contains("`{{b}}`"))
        );
        assert!(
            matches!(fill("{{a", &vars, "t"), Err(InitError::Internal(m)) if m.contains("unclosed"))
        );
    }

    #[test]
    fn existing_files_are_not_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("repo");
        let s = scaffold(&args("ecs", &[]), &Registry::builtin()).unwrap();
        let written = write(&s, &out, false).unwrap();
        assert_eq!(written.len(), 5);
        for (p, (_, content)) in written.iter().zip(&s.files) {
            assert_eq!(&std::fs::read_to_string(p).unwrap(), content);
        }

        // One file of the user's: refused, nothing written.
        std::fs::write(out.join("README.md"), "mine\n").unwrap();
        std::fs::remove_file(out.join(SPEC_FILE)).unwrap();
        let e = write(&s, &out, false).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(&e, InitError::Exists(p) if p.len() == 4), "{msg}");
        assert!(
            msg.contains("README.md") && msg.contains("--force"),
            "{msg}"
        );
        assert!(!out.join(SPEC_FILE).exists(), "nothing written on refusal");
        assert_eq!(
            std::fs::read_to_string(out.join("README.md")).unwrap(),
            "mine\n"
        );

        // --force replaces them.
        write(&s, &out, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("README.md")).unwrap(),
            file(&s, "README.md")
        );
        assert!(out.join(SPEC_FILE).exists());

        // --out that is a file.
        let f = dir.path().join("plain");
        std::fs::write(&f, "x").unwrap();
        let e = write(&s, &f, true).unwrap_err();
        assert!(
            e.to_string().contains("--out") && e.to_string().contains("not a directory"),
            "{e}"
        );
    }
}
