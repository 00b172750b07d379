//! Semantic validation of a parsed spec: every problem is collected with its
//! field path, the value and what is allowed.
//!
//! The shared checks (names, account, region, role ARNs, VPC, tags, owner,
//! environments) live here; each provider adds its kind-specific checks
//! through [`EnvironmentProvider::validate`](crate::provider::EnvironmentProvider::validate),
//! and the physical names it derives are checked against AWS's limits and
//! for collisions between providers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::arn::RoleArn;
use super::cidr::Ipv4Cidr;
use super::{
    EnvironmentSpec, ProviderKind, ProviderSpec, SpecError, SpecFile, ValidSpec, ValidationErrors,
    VpcMode, legacy_vpc_mode, regions,
};
use crate::provider::Registry;
use crate::provider::common::partition;
use crate::provider::names::{DerivedName, NameScope};

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "harmonix/v1";
/// Longest provider or environment name (a Backstage entity name).
pub const MAX_NAME: usize = 63;
/// Longest resource-name prefix.
pub const MAX_PREFIX: usize = 20;
/// Longest environment short name.
pub const MAX_SHORT_NAME: usize = 32;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// Tags a spec may set: AWS allows 50 per resource, Harmonix adds 3.
pub const MAX_USER_TAGS: usize = 47;
/// Longest tag key.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value.
pub const MAX_TAG_VALUE: usize = 256;
/// Tag key prefixes reserved by AWS and by Harmonix.
pub const RESERVED_TAG_PREFIXES: [&str; 2] = ["aws:", "harmonix:"];
/// Highest environment `level`.
pub const MAX_LEVEL: u32 = 100;
/// Retention periods CloudWatch Logs accepts, in days.
pub const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// Largest (shortest prefix) and smallest (longest prefix) VPC AWS allows.
pub const AWS_VPC_PREFIX: (u8, u8) = (16, 28);
/// Smallest new VPC Harmonix can build: split into 8 subnets
/// ([`subnet_bits`](crate::provider::common::subnet_bits)), each must still
/// be a /28 or larger.
pub const MAX_NEW_VPC_PREFIX: u8 = 25;

/// Check a parsed spec; on success it may be rendered and deployed.
pub fn validate(file: SpecFile, registry: &Registry, origin: &str) -> Result<ValidSpec, SpecError> {
    let errors = problems(&file, registry);
    if errors.is_empty() {
        Ok(ValidSpec::new_unchecked(file))
    } else {
        Err(SpecError::Invalid {
            origin: origin.to_owned(),
            errors,
        })
    }
}

/// Every problem of a parsed spec, in file order (empty when it is valid).
pub fn problems(file: &SpecFile, registry: &Registry) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    if let Some(v) = &file.api_version
        && v != API_VERSION
    {
        errors.push(
            "apiVersion",
            Some(v),
            format!("unsupported apiVersion; allowed: `{API_VERSION}` (or leave it out)"),
        );
    }
    let mut first_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut names = NameTable::default();
    for (i, p) in file.providers.iter().enumerate() {
        let path = format!("providers[{i}]");
        let provider_start = errors.len();
        let mut names_ok = check_provider_fields(p, &path, &mut errors);
        match first_by_name.get(p.name.as_str()) {
            Some(first) => {
                errors.push(
                    format!("{path}.name"),
                    Some(&p.name),
                    format!("duplicate provider name: providers[{first}] already has it; names must be unique in the file"),
                );
                names_ok = false;
            }
            None => {
                first_by_name.insert(&p.name, i);
            }
        }
        let Some(provider) = registry.get(p.kind) else {
            let known: Vec<&str> = registry.kinds().map(ProviderKind::as_str).collect();
            errors.push(
                format!("{path}.kind"),
                Some(p.kind.as_str()),
                format!(
                    "no provider is registered for this kind; registered: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            continue;
        };
        provider.validate(p, &path, &mut errors);
        if names_ok {
            let derived = provider.derived_names(p, &path);
            let flagged: Vec<String> = errors
                .iter()
                .skip(provider_start)
                .map(|e| e.path.clone())
                .collect();
            check_derived_names(&derived, &flagged, &mut errors);
            names.add(i, p, &derived, &mut errors);
        }
    }
    check_environments(file, &mut errors);
    errors
}

// ---------------------------------------------------------------------------
// Providers

/// The checks every kind shares. Returns whether `name` and `prefix` are
/// valid (derived names are only checked then).
fn check_provider_fields(p: &ProviderSpec, path: &str, errors: &mut ValidationErrors) -> bool {
    let mut names_ok = true;
    if let Some(problem) = provider_name_problem(&p.name) {
        errors.push(
            format!("{path}.name"),
            Some(&p.name),
            format!("{problem}; a provider name is 1–{MAX_NAME} lowercase letters, digits and single `-`, starting with a letter and not ending with `-` (e.g. `payments-dev`)"),
        );
        names_ok = false;
    }
    if let Some(prefix) = &p.prefix
        && let Some(problem) = slug_problem(prefix, MAX_PREFIX)
    {
        errors.push(
            format!("{path}.prefix"),
            Some(prefix),
            format!("{problem}; a prefix is 1–{MAX_PREFIX} lowercase letters, digits and `-`, starting with a letter (default `opa`)"),
        );
        names_ok = false;
    }
    check_description(
        p.description.as_deref(),
        &format!("{path}.description"),
        errors,
    );
    check_owner(&p.owner, &format!("{path}.owner"), errors);
    if let Some(l) = &p.lifecycle {
        check_lifecycle(l, &format!("{path}.lifecycle"), errors);
    }
    let account_ok = check_account(p.account.as_str(), &format!("{path}.account"), errors);
    let region_ok = check_region(&p.region, &format!("{path}.region"), errors);
    let region = region_ok.then_some(p.region.as_str());
    check_role(
        &p.environment_role,
        &format!("{path}.environmentRole"),
        region,
        account_ok.then_some(p.account.as_str()),
        errors,
    );
    check_role(
        &p.platform_role,
        &format!("{path}.platformRole"),
        region,
        None,
        errors,
    );
    check_role(
        &p.pipeline_role,
        &format!("{path}.pipelineRole"),
        region,
        None,
        errors,
    );
    check_vpc(p, path, errors);
    if let Some(days) = p.log_retention_days
        && !LOG_RETENTION_DAYS.contains(&days)
    {
        let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(u32::to_string).collect();
        errors.push(
            format!("{path}.logRetentionDays"),
            Some(&days.to_string()),
            format!(
                "CloudWatch Logs does not accept this retention; allowed days: {}",
                allowed.join(", ")
            ),
        );
    }
    check_tags(p, path, errors);
    check_kind_sections(p, path, errors);
    names_ok
}

/// Why `name` is not a provider name: a slug of at most 63 characters
/// without a trailing or doubled `-`.
fn provider_name_problem(name: &str) -> Option<String> {
    slug_problem(name, MAX_NAME).or_else(|| {
        if name.ends_with('-') {
            Some("ends with `-`".to_owned())
        } else if name.contains("--") {
            Some("contains `--`".to_owned())
        } else {
            None
        }
    })
}

/// Why `s` does not match `^[a-z][a-z0-9-]*$` with 1–`max` characters.
fn slug_problem(s: &str, max: usize) -> Option<String> {
    let len = s.chars().count();
    if len == 0 {
        return Some("is empty".to_owned());
    }
    if len > max {
        return Some(format!("is {len} characters, more than {max}"));
    }
    if let Some(c) = s.chars().find(char::is_ascii_uppercase) {
        return Some(format!(
            "contains the uppercase letter {c:?}; use lowercase"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("must start with a lowercase letter".to_owned());
    }
    s.chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        .map(|c| format!("contains {c:?}"))
}

fn check_description(d: Option<&str>, path: &str, errors: &mut ValidationErrors) {
    if let Some(d) = d
        && d.chars().count() > MAX_DESCRIPTION
    {
        errors.push(
            path,
            Some(d),
            format!(
                "is {} characters; at most {MAX_DESCRIPTION} are allowed",
                d.chars().count()
            ),
        );
    }
}

fn check_owner(owner: &str, path: &str, errors: &mut ValidationErrors) {
    if let Some(problem) = entity_ref_problem(owner) {
        errors.push(
            path,
            Some(owner),
            format!("not a Backstage entity reference: {problem}; expected `[kind:][namespace/]name`, e.g. `group:payments` or `user:default/jane.doe`"),
        );
    }
}

/// Why `s` is not a Backstage entity reference `[kind:][namespace/]name`.
fn entity_ref_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".to_owned());
    }
    let (kind, rest) = match s.split_once(':') {
        Some((k, r)) => (Some(k), r),
        None => (None, s),
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((n, r)) => (Some(n), r),
        None => (None, rest),
    };
    let parts = [
        (kind, "kind"),
        (namespace, "namespace"),
        (Some(name), "name"),
    ];
    for (part, label) in parts {
        let Some(part) = part else { continue };
        if part.is_empty() {
            return Some(format!("the {label} is empty"));
        }
        if !part.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Some(format!(
                "the {label} `{part}` must start with a letter or digit"
            ));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
        {
            return Some(format!(
                "the {label} `{part}` contains {c:?}; allowed: letters, digits, `.`, `_`, `-`"
            ));
        }
        if label != "kind" && part.chars().count() > MAX_NAME {
            return Some(format!(
                "the {label} is {} characters, more than {MAX_NAME}",
                part.chars().count()
            ));
        }
    }
    None
}

fn check_lifecycle(l: &str, path: &str, errors: &mut ValidationErrors) {
    if let Some(problem) = slug_problem(l, usize::MAX) {
        errors.push(
            path,
            Some(l),
            format!("{problem}; a lifecycle is lowercase letters, digits and `-`, starting with a letter (e.g. `experimental`, `production`)"),
        );
    }
}

/// Check a 12-digit account id; returns whether it is valid.
fn check_account(account: &str, path: &str, errors: &mut ValidationErrors) -> bool {
    let digits = !account.is_empty() && account.bytes().all(|b| b.is_ascii_digit());
    let n = account.len();
    let message = match (digits, n) {
        (true, 12) => return true,
        (true, n) if n < 12 => format!(
            "has {n} digits; an AWS account id has exactly 12. If it began with zeros, YAML read it as a number and dropped them: quote it, e.g. `account: \"{account:0>12}\"`"
        ),
        (true, n) => format!("has {n} digits; an AWS account id has exactly 12"),
        (false, _) => {
            "an AWS account id is exactly 12 digits, e.g. `\"123456789012\"` (quote it in YAML)"
                .to_owned()
        }
    };
    errors.push(path, Some(account), message);
    false
}

/// Check a region code; returns whether it is known.
fn check_region(region: &str, path: &str, errors: &mut ValidationErrors) -> bool {
    if regions::is_known(region) {
        return true;
    }
    let close = regions::suggestions(region);
    let hint = match close.as_slice() {
        [] => String::new(),
        [one] => format!("did you mean `{one}`? "),
        many => format!("did you mean one of {}? ", quoted(many)),
    };
    errors.push(
        path,
        Some(region),
        format!(
            "not an AWS region; {hint}regions are codes like `us-east-1`, `eu-west-1`, `ap-southeast-2` ({} known)",
            regions::REGIONS.len()
        ),
    );
    false
}

/// Check a role ARN; its partition must be the region's (when the region is
/// valid) and its account `account` (when given).
fn check_role(
    arn: &str,
    path: &str,
    region: Option<&str>,
    account: Option<&str>,
    errors: &mut ValidationErrors,
) {
    let role = match RoleArn::parse(arn) {
        Ok(r) => r,
        Err(problem) => {
            errors.push(path, Some(arn), problem);
            return;
        }
    };
    let mut problems = Vec::new();
    if let Some(region) = region {
        let expected = partition(region);
        if role.partition != expected {
            problems.push(format!(
                "partition `{}` does not match region `{region}`, which is in partition `{expected}`",
                role.partition
            ));
        }
    }
    if let Some(account) = account
        && role.account != account
    {
        problems.push(format!(
            "the role is in account {} but `account` is {account}; the environment role must be in the target account",
            role.account
        ));
    }
    if !problems.is_empty() {
        errors.push(path, Some(arn), problems.join("; "));
    }
}

/// The VPC: `vpc` block or legacy fields (not both), mode-specific fields.
fn check_vpc(p: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let Some(vpc) = &p.vpc else {
        check_legacy_vpc(p, path, errors);
        return;
    };
    let legacy = [
        (
            "vpc_configuration",
            p.legacy_vpc_configuration.as_deref(),
            "vpc.mode",
        ),
        ("cidr", p.legacy_cidr.as_deref(), "vpc.cidr"),
        ("vpc_id", p.legacy_vpc_id.as_deref(), "vpc.id"),
    ];
    for (field, value, instead) in legacy {
        if let Some(v) = value {
            errors.push(
                format!("{path}.{field}"),
                Some(v),
                format!("the legacy field `{field}` cannot be combined with the `vpc` block; use `{instead}` instead"),
            );
        }
    }
    let subnets = [
        ("privateSubnetIds", &vpc.private_subnet_ids),
        ("publicSubnetIds", &vpc.public_subnet_ids),
    ];
    match vpc.mode {
        VpcMode::New => {
            if let Some(cidr) = &vpc.cidr {
                check_new_vpc_cidr(cidr, &format!("{path}.vpc.cidr"), errors);
            }
            if let Some(id) = &vpc.id {
                errors.push(
                    format!("{path}.vpc.id"),
                    Some(id),
                    "only allowed with `mode: existing`; with `mode: new` (the default) Harmonix creates the VPC",
                );
            }
            for (field, ids) in subnets {
                if !ids.is_empty() {
                    errors.push(
                        format!("{path}.vpc.{field}"),
                        None,
                        "only allowed with `mode: existing`; a new VPC gets its own subnets",
                    );
                }
            }
        }
        VpcMode::Existing => {
            match &vpc.id {
                Some(id) => check_aws_id(id, "vpc", &format!("{path}.vpc.id"), errors),
                None => errors.push(
                    format!("{path}.vpc.id"),
                    None,
                    "required with `mode: existing`: the id of the VPC to use, e.g. `vpc-0a1b2c3d4e5f60718`",
                ),
            }
            if let Some(cidr) = &vpc.cidr {
                errors.push(
                    format!("{path}.vpc.cidr"),
                    Some(cidr),
                    "only allowed with `mode: new`; an existing VPC keeps its own CIDR",
                );
            }
            for (field, ids) in subnets {
                check_subnet_ids(ids, &format!("{path}.vpc.{field}"), errors);
            }
        }
    }
    crate::provider::common::validate_nat_gateways(
        vpc.nat_gateways,
        vpc.mode == VpcMode::Existing,
        &format!("{path}.vpc.natGateways"),
        errors,
    );
}

/// The original Harmonix parameters: `vpc_configuration`, `cidr`, `vpc_id`.
fn check_legacy_vpc(p: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let mut mode = p.vpc_mode();
    if let Some(v) = &p.legacy_vpc_configuration {
        match legacy_vpc_mode(v) {
            Some(m) => mode = m,
            None => errors.push(
                format!("{path}.vpc_configuration"),
                Some(v),
                "unknown VPC configuration; allowed: `new`, `existing` (or the original template's `Create New VPC`, `Use Existing VPC`)",
            ),
        }
    }
    match mode {
        VpcMode::New => {
            if let Some(cidr) = &p.legacy_cidr {
                check_new_vpc_cidr(cidr, &format!("{path}.cidr"), errors);
            }
            if let Some(id) = &p.legacy_vpc_id {
                errors.push(
                    format!("{path}.vpc_id"),
                    Some(id),
                    "`vpc_configuration` asks for a new VPC; `vpc_id` is only allowed with `vpc_configuration: existing`",
                );
            }
        }
        VpcMode::Existing => {
            match &p.legacy_vpc_id {
                Some(id) => check_aws_id(id, "vpc", &format!("{path}.vpc_id"), errors),
                None => errors.push(
                    format!("{path}.vpc_id"),
                    None,
                    "required with `vpc_configuration: existing`: the id of the VPC to use, e.g. `vpc-0a1b2c3d4e5f60718`",
                ),
            }
            if let Some(cidr) = &p.legacy_cidr {
                errors.push(
                    format!("{path}.cidr"),
                    Some(cidr),
                    "only allowed for a new VPC; this provider uses an existing VPC (`vpc_id`), which keeps its own CIDR",
                );
            }
        }
    }
}

/// The CIDR of a new VPC: a private, aligned IPv4 block of /16 to /25.
fn check_new_vpc_cidr(cidr: &str, path: &str, errors: &mut ValidationErrors) {
    let c = match Ipv4Cidr::parse(cidr) {
        Ok(c) => c,
        Err(problem) => {
            errors.push(
                path,
                Some(cidr),
                format!("not an IPv4 CIDR: {problem}; a new VPC needs a private block /16–/{MAX_NEW_VPC_PREFIX}, e.g. `10.0.0.0/24`"),
            );
            return;
        }
    };
    if !c.is_aligned() {
        errors.push(
            path,
            Some(cidr),
            format!(
                "host bits are set: the network of this /{} block is `{}`; write that",
                c.len,
                c.aligned()
            ),
        );
    }
    let (aws_min, aws_max) = AWS_VPC_PREFIX;
    if c.len < aws_min {
        errors.push(
            path,
            Some(cidr),
            format!("a /{} block is larger than AWS allows: VPC CIDRs are /{aws_min} (65,536 addresses) to /{aws_max}; Harmonix builds new VPCs of /{aws_min} to /{MAX_NEW_VPC_PREFIX}", c.len),
        );
    } else if c.len > MAX_NEW_VPC_PREFIX {
        let sub = u32::from(c.len) + 3;
        errors.push(
            path,
            Some(cidr),
            format!(
                "a /{} block is too small: Harmonix splits a new VPC into 8 equal subnets (3 public, 3 private, 2 spare), which would be /{sub}, and AWS subnets are at least /{aws_max}; use /{aws_min} to /{MAX_NEW_VPC_PREFIX}",
                c.len
            ),
        );
    }
    if !c.aligned().is_private() {
        errors.push(
            path,
            Some(cidr),
            "not in a private range: a VPC CIDR must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (RFC 1918)",
        );
    }
}

/// Whether `s` is `<kind>-` followed by 8 or 17 lowercase hex digits.
fn is_aws_id(s: &str, kind: &str) -> bool {
    s.strip_prefix(kind)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

fn check_aws_id(id: &str, kind: &str, path: &str, errors: &mut ValidationErrors) {
    if !is_aws_id(id, kind) {
        errors.push(
            path,
            Some(id),
            format!("not a {kind} id; expected `{kind}-` and 8 or 17 lowercase hex digits, e.g. `{kind}-0a1b2c3d4e5f60718`"),
        );
    }
}

fn check_subnet_ids(ids: &[String], path: &str, errors: &mut ValidationErrors) {
    let mut seen = std::collections::BTreeSet::new();
    for (j, id) in ids.iter().enumerate() {
        let at = format!("{path}[{j}]");
        if seen.insert(id.as_str()) {
            check_aws_id(id, "subnet", &at, errors);
        } else {
            errors.push(at, Some(id), "listed twice");
        }
    }
}

/// Tags: count, key and value length, reserved prefixes, characters.
fn check_tags(p: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    if p.tags.len() > MAX_USER_TAGS {
        errors.push(
            format!("{path}.tags"),
            Some(&format!("{} tags", p.tags.len())),
            format!("at most {MAX_USER_TAGS} tags are allowed: AWS allows 50 per resource and Harmonix adds 3 (`harmonix:environment`, `harmonix:kind`, `harmonix:prefix`)"),
        );
    }
    for (key, value) in &p.tags {
        let at = format!("{path}.tags.{key}");
        if let Some(problem) = tag_key_problem(key) {
            errors.push(&at, Some(key), problem);
        }
        if let Some(problem) = tag_value_problem(value) {
            errors.push(&at, Some(value), problem);
        }
    }
}

const TAG_SYMBOLS: &str = "_.:/=+-@";

/// Letters, digits, spaces and `_.:/=+-@` (AWS's `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || c == ' '
        || (c.is_whitespace() && !c.is_control())
        || TAG_SYMBOLS.contains(c)
}

fn tag_key_problem(key: &str) -> Option<String> {
    let len = key.chars().count();
    if len == 0 || len > MAX_TAG_KEY {
        return Some(format!(
            "tag key is {len} characters; AWS allows 1–{MAX_TAG_KEY}"
        ));
    }
    let lower = key.to_lowercase();
    if let Some(p) = RESERVED_TAG_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        return Some(format!(
            "tag keys starting with `{p}` are reserved ({}); choose another key",
            if *p == "aws:" {
                "by AWS"
            } else {
                "for the tags Harmonix sets itself"
            }
        ));
    }
    key.chars().find(|c| !is_tag_char(*c)).map(|c| {
        format!("tag key contains {c:?}; allowed: letters, digits, spaces and `{TAG_SYMBOLS}`")
    })
}

fn tag_value_problem(value: &str) -> Option<String> {
    let len = value.chars().count();
    if len > MAX_TAG_VALUE {
        return Some(format!(
            "tag value is {len} characters; AWS allows at most {MAX_TAG_VALUE}"
        ));
    }
    value.chars().find(|c| !is_tag_char(*c)).map(|c| {
        format!("tag value contains {c:?}; allowed: letters, digits, spaces and `{TAG_SYMBOLS}`")
    })
}

/// Kind-specific sections (`ecs`, `eks`, `serverless`, `platform`,
/// `vmImage`) only on their kinds.
fn check_kind_sections(p: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let sections: [(&str, bool, &[ProviderKind]); 5] = [
        (
            "ecs",
            p.ecs.is_some(),
            &[ProviderKind::Ecs, ProviderKind::EcsEc2],
        ),
        ("eks", p.eks.is_some(), &[ProviderKind::Eks]),
        (
            "serverless",
            p.serverless.is_some(),
            &[ProviderKind::Serverless],
        ),
        (
            "platform",
            p.platform.is_some(),
            &[ProviderKind::BackstagePlatform],
        ),
        ("vmImage", p.vm_image.is_some(), &[ProviderKind::VmImage]),
    ];
    for (field, present, kinds) in sections {
        if present && !kinds.contains(&p.kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            errors.push(
                format!("{path}.{field}"),
                None,
                format!(
                    "the `{field}` section applies only to kind{} {}; this provider is kind `{}`",
                    if names.len() > 1 { "s" } else { "" },
                    quoted(&names),
                    p.kind
                ),
            );
        }
    }
}

/// Derived names against AWS's limits: one error per spec field, skipping
/// fields that already have an error (`flagged`).
fn check_derived_names(derived: &[DerivedName], flagged: &[String], errors: &mut ValidationErrors) {
    let mut by_path: BTreeMap<&str, Vec<(&DerivedName, String)>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for d in derived {
        if flagged.contains(&d.path) {
            continue;
        }
        if let Some(problem) = d.kind.check(&d.value) {
            let entry = by_path.entry(d.path.as_str()).or_default();
            if entry.is_empty() {
                order.push(&d.path);
            }
            entry.push((d, problem));
        }
    }
    for path in order {
        let Some(list) = by_path.get(path) else {
            continue;
        };
        let Some(((first, msg), rest)) = list.split_first() else {
            continue;
        };
        let mut message = msg.clone();
        if !rest.is_empty() {
            let others: Vec<String> = rest
                .iter()
                .map(|(d, _)| {
                    format!(
                        "{} `{}` ({} characters)",
                        d.kind.label(),
                        d.value,
                        d.value.chars().count()
                    )
                })
                .collect();
            message = format!("{message}. Also too long or invalid: {}", others.join(", "));
        }
        errors.push(path, Some(&first.value), message);
    }
}

/// Derived names seen so far, by kind, scope and value: which provider has it.
#[derive(Debug, Default)]
struct NameTable<'a> {
    seen: BTreeMap<(crate::provider::NameKind, String, String, String), (usize, &'a str)>,
}

impl<'a> NameTable<'a> {
    /// Record provider `i`'s names; a name another provider already derives
    /// in the same scope is an error (one per pair of providers and field).
    fn add(
        &mut self,
        i: usize,
        p: &'a ProviderSpec,
        derived: &[DerivedName],
        errors: &mut ValidationErrors,
    ) {
        // (first provider, field path) -> colliding names
        let mut clashes: BTreeMap<(usize, &str), (&str, Vec<&DerivedName>)> = BTreeMap::new();
        for d in derived {
            let region = match d.kind.scope() {
                NameScope::Account => String::new(),
                NameScope::Region => p.region.clone(),
            };
            let key = (
                d.kind,
                p.account.as_str().to_owned(),
                region,
                d.value.clone(),
            );
            match self.seen.get(&key) {
                Some(&(j, first_name)) if j != i => {
                    clashes
                        .entry((j, d.path.as_str()))
                        .or_insert_with(|| (first_name, Vec::new()))
                        .1
                        .push(d);
                }
                Some(_) => {}
                None => {
                    self.seen.insert(key, (i, p.name.as_str()));
                }
            }
        }
        for ((j, path), (first_name, names)) in clashes {
            let Some(first) = names.first() else { continue };
            let list: Vec<String> = names
                .iter()
                .map(|d| format!("{} `{}`", d.kind.label(), d.value))
                .collect();
            let scope = if names.iter().all(|d| d.kind.scope() == NameScope::Account) {
                format!("account {}", p.account)
            } else {
                format!("account {} and region {}", p.account, p.region)
            };
            errors.push(
                path,
                Some(&first.value),
                format!(
                    "derived names collide with provider `{first_name}` (providers[{j}]) in the same {scope}: both derive {}; change this provider's `name` or `prefix`",
                    list.join(", ")
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Environments

fn check_environments(file: &SpecFile, errors: &mut ValidationErrors) {
    let mut provider_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in file.providers.iter().enumerate() {
        provider_index.entry(p.name.as_str()).or_insert(i);
    }
    let mut first_by_name: BTreeMap<String, usize> = BTreeMap::new();
    for (k, env) in file.environments.iter().enumerate() {
        let path = format!("environments[{k}]");
        check_environment_name(env, &path, &provider_index, errors);
        match first_by_name.get(&env.name.to_ascii_lowercase()) {
            Some(first) => errors.push(
                format!("{path}.name"),
                Some(&env.name),
                format!("duplicate environment name: environments[{first}] already has it (Backstage names are case-insensitive)"),
            ),
            None => {
                first_by_name.insert(env.name.to_ascii_lowercase(), k);
            }
        }
        check_short_name(&env.short_name, &format!("{path}.shortName"), errors);
        check_owner(&env.owner, &format!("{path}.owner"), errors);
        check_description(
            env.description.as_deref(),
            &format!("{path}.description"),
            errors,
        );
        if let Some(l) = &env.lifecycle {
            check_lifecycle(l, &format!("{path}.lifecycle"), errors);
        }
        if let Some(system) = &env.system
            && let Some(problem) = entity_ref_problem(system)
        {
            errors.push(
                format!("{path}.system"),
                Some(system),
                format!("not a Backstage entity reference: {problem}; expected a system name such as `shop`"),
            );
        }
        if let Some(level) = env.level
            && level > MAX_LEVEL
        {
            errors.push(
                format!("{path}.level"),
                Some(&level.to_string()),
                format!("must be between 0 and {MAX_LEVEL}"),
            );
        }
        for (j, tag) in env.tags.iter().enumerate() {
            if let Some(problem) = backstage_tag_problem(tag) {
                errors.push(format!("{path}.tags[{j}]"), Some(tag), problem);
            }
        }
        check_environment_providers(file, env, &path, &provider_index, errors);
    }
}

fn check_environment_name(
    env: &EnvironmentSpec,
    path: &str,
    provider_index: &BTreeMap<&str, usize>,
    errors: &mut ValidationErrors,
) {
    let at = format!("{path}.name");
    if let Some(problem) = backstage_name_problem(&env.name) {
        errors.push(
            &at,
            Some(&env.name),
            format!("{problem}; an environment name is 1–{MAX_NAME} letters and digits, in groups joined by single `-`, `_` or `.` (e.g. `payments-dev`)"),
        );
    } else if let Some(i) = provider_index.get(env.name.as_str()) {
        errors.push(
            &at,
            Some(&env.name),
            format!("providers[{i}] has the same name; an environment and a provider must be named differently so catalog references stay unambiguous"),
        );
    }
}

/// Why `s` is not `^[a-z0-9]+([-_.][a-z0-9]+)*$` (any case), ≤ 63 chars.
fn backstage_name_problem(s: &str) -> Option<String> {
    let len = s.chars().count();
    if len == 0 {
        return Some("is empty".to_owned());
    }
    if len > MAX_NAME {
        return Some(format!("is {len} characters, more than {MAX_NAME}"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Some(format!("contains {c:?}"));
    }
    let separated_groups_ok = s.split(['-', '_', '.']).all(|g| !g.is_empty());
    if !separated_groups_ok {
        return Some(
            "must start and end with a letter or digit and not repeat `-`, `_` or `.`".to_owned(),
        );
    }
    None
}

/// Why `s` is not a Backstage tag: 1–63 of `[a-z0-9:+#]`, groups joined by single `-`.
fn backstage_tag_problem(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.chars().count() <= MAX_NAME
        && s.split('-').all(|g| {
            !g.is_empty()
                && g.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":+#".contains(c))
        });
    (!ok).then(|| {
        format!("not a Backstage tag; tags are 1–{MAX_NAME} lowercase letters, digits and `:+#`, in groups joined by single `-` (e.g. `aws`, `team-payments`)")
    })
}

fn check_short_name(s: &str, path: &str, errors: &mut ValidationErrors) {
    let len = s.chars().count();
    let problem = if len == 0 {
        Some("is empty".to_owned())
    } else if len > MAX_SHORT_NAME {
        Some(format!("is {len} characters, more than {MAX_SHORT_NAME}"))
    } else {
        s.chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|c| format!("contains {c:?}"))
    };
    if let Some(problem) = problem {
        errors.push(
            path,
            Some(s),
            format!("{problem}; a short name is 1–{MAX_SHORT_NAME} lowercase letters, digits and `-` (e.g. `dev`)"),
        );
    }
}

/// The providers of an environment exist, are listed once, and share
/// account, region and environment type.
fn check_environment_providers(
    file: &SpecFile,
    env: &EnvironmentSpec,
    path: &str,
    provider_index: &BTreeMap<&str, usize>,
    errors: &mut ValidationErrors,
) {
    if env.providers.is_empty() {
        errors.push(
            format!("{path}.providers"),
            None,
            "at least one provider is required: names of providers in this file",
        );
        return;
    }
    let known: Vec<&str> = file.providers.iter().map(|p| p.name.as_str()).collect();
    let mut anchor: Option<(usize, &ProviderSpec)> = None;
    let mut seen = std::collections::BTreeSet::new();
    for (j, name) in env.providers.iter().enumerate() {
        let at = format!("{path}.providers[{j}]");
        if !seen.insert(name.as_str()) {
            errors.push(at, Some(name), "listed twice");
            continue;
        }
        let Some(p) = provider_index
            .get(name.as_str())
            .and_then(|&i| file.providers.get(i).map(|p| (i, p)))
        else {
            errors.push(
                at,
                Some(name),
                format!(
                    "no provider with this name in the file; providers: {}",
                    quoted(&known)
                ),
            );
            continue;
        };
        let Some((ai, a)) = anchor else {
            anchor = Some(p);
            continue;
        };
        let (_, p) = p;
        let mut mismatches = Vec::new();
        if p.account != a.account {
            mismatches.push(format!("account {} vs {}", p.account, a.account));
        }
        if p.region != a.region {
            mismatches.push(format!("region {} vs {}", p.region, a.region));
        }
        if p.kind.env_type() != a.kind.env_type() {
            mismatches.push(format!(
                "environment type {} (kind {}) vs {} (kind {})",
                p.kind.env_type(),
                p.kind,
                a.kind.env_type(),
                a.kind
            ));
        }
        if !mismatches.is_empty() {
            errors.push(
                at,
                Some(name),
                format!(
                    "the providers of an environment must share account, region and environment type; this one differs from `{}` (providers[{ai}]): {}",
                    a.name,
                    mismatches.join(", ")
                ),
            );
        }
    }
}

/// Most items [`quoted`] lists before it says how many there are.
const MAX_LISTED: usize = 12;

/// `a`, `b`, `c` with backticks; long lists are cut at [`MAX_LISTED`]
/// items (messages stay short however large the spec).
fn quoted(items: &[&str]) -> String {
    let mut out = items
        .iter()
        .take(MAX_LISTED)
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX_LISTED {
        let _ = write!(out, ", … ({} in all)", items.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::Entity;
    use crate::provider::{
        EcsProvider, EnvironmentProvider, NameKind, StackDefinition, StackOutputs,
    };
    use crate::spec::{ValidProvider, parse_str};

    const ECS: &str = r#"
  - kind: ecs
    name: payments-dev
    owner: group:payments
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

    /// A provider from the ECS template with `edits` (`from`, `to`) applied
    /// and `extra` lines appended.
    fn provider(edits: &[(&str, &str)], extra: &str) -> String {
        let mut p = ECS.to_owned();
        for (from, to) in edits {
            assert!(p.contains(from), "{from}");
            p = p.replace(from, to);
        }
        p + extra
    }

    /// `(path, message)` of every problem of the spec, with the ECS-only
    /// registry (the other kinds are tested by their providers).
    fn check(yaml: &str) -> Vec<(String, String)> {
        let file = match parse_str(yaml, "test") {
            Ok(f) => f,
            Err(e) => panic!("test spec does not parse: {e}"),
        };
        let mut registry = Registry::empty();
        registry.register(Arc::new(EcsProvider));
        problems(&file, &registry)
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect()
    }

    fn paths(yaml: &str) -> Vec<String> {
        check(yaml).into_iter().map(|(p, _)| p).collect()
    }

    fn one(yaml: &str) -> (String, String) {
        let all = check(yaml);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn baseline_is_valid() {
        assert_eq!(check(&format!("providers:{ECS}")), []);
    }

    #[test]
    fn china_and_govcloud_partitions() {
        let cn = provider(
            &[("us-east-1", "cn-north-1"), ("arn:aws:", "arn:aws-cn:")],
            "",
        );
        assert_eq!(check(&format!("providers:{cn}")), []);
        let gov = provider(
            &[
                ("us-east-1", "us-gov-west-1"),
                ("arn:aws:", "arn:aws-us-gov:"),
            ],
            "",
        );
        assert_eq!(check(&format!("providers:{gov}")), []);
        // Commercial ARNs in a China region: all three roles are reported.
        let mixed = provider(&[("us-east-1", "cn-northwest-1")], "");
        let all = check(&format!("providers:{mixed}"));
        assert_eq!(all.len(), 3, "{all:#?}");
        assert!(
            all.iter().all(|(_, m)| m.contains("partition `aws-cn`")),
            "{all:#?}"
        );
    }

    #[test]
    fn unknown_region_skips_partition_checks() {
        let p = provider(&[("us-east-1", "moon-1")], "");
        assert_eq!(paths(&format!("providers:{p}")), ["providers[0].region"]);
    }

    #[test]
    fn account_hints() {
        let p = provider(&[("\"123456789012\"", "12345678901")], "");
        let (path, msg) = one(&format!("providers:{p}"));
        assert_eq!(path, "providers[0].account");
        assert!(
            msg.contains("11 digits") && msg.contains("\"012345678901\""),
            "{msg}"
        );
        let p = provider(&[("\"123456789012\"", "\"1234567890123\"")], "");
        let (_, msg) = one(&format!("providers:{p}"));
        assert!(
            msg.contains("13 digits") && !msg.contains("quote it, e.g."),
            "{msg}"
        );
        let p = provider(&[("\"123456789012\"", "\"\"")], "");
        assert_eq!(one(&format!("providers:{p}")).0, "providers[0].account");
    }

    #[test]
    fn environment_role_account_is_compared_only_when_valid() {
        let p = provider(
            &[("arn:aws:iam::123456789012:", "arn:aws:iam::999999999999:")],
            "",
        );
        let (path, msg) = one(&format!("providers:{p}"));
        assert_eq!(path, "providers[0].environmentRole");
        assert!(
            msg.contains("999999999999") && msg.contains("123456789012"),
            "{msg}"
        );
    }

    #[test]
    fn vpc_modes() {
        let ok = [
            "    vpc: { mode: new }\n",
            "    vpc: { cidr: 192.168.4.0/22 }\n",
            "    vpc: { cidr: 172.31.0.0/16 }\n",
            "    vpc: { cidr: 10.0.0.0/25 }\n",
            "    vpc: { mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a1b2c3d4e5f60718] }\n",
            "    vpc_configuration: Use Existing VPC\n    vpc_id: vpc-0a1b2c3d\n",
            "    vpc_configuration: create new vpc\n    cidr: 10.9.0.0/16\n",
            "    vpc_id: vpc-0a1b2c3d\n",
            "    cidr: 10.9.0.0/16\n",
        ];
        for extra in ok {
            assert_eq!(
                check(&format!("providers:{}", provider(&[], extra))),
                [],
                "{extra}"
            );
        }
        let bad = [
            (
                "    vpc: { cidr: 0.0.0.0/0 }\n",
                vec!["providers[0].vpc.cidr", "providers[0].vpc.cidr"],
            ),
            (
                "    vpc: { cidr: 10.0.0.1/26 }\n",
                vec!["providers[0].vpc.cidr", "providers[0].vpc.cidr"],
            ),
            (
                "    vpc: { mode: existing, id: vpc-1, publicSubnetIds: [subnet-0a1b2c3d, subnet-0a1b2c3d] }\n",
                vec!["providers[0].vpc.id", "providers[0].vpc.publicSubnetIds[1]"],
            ),
            (
                "    vpc: { id: vpc-0a1b2c3d }\n    vpc_configuration: new\n    cidr: 10.0.0.0/24\n",
                vec![
                    "providers[0].vpc_configuration",
                    "providers[0].cidr",
                    "providers[0].vpc.id",
                ],
            ),
            (
                "    vpc_configuration: new\n    vpc_id: vpc-0a1b2c3d\n",
                vec!["providers[0].vpc_id"],
            ),
        ];
        for (extra, want) in bad {
            assert_eq!(
                paths(&format!("providers:{}", provider(&[], extra))),
                want,
                "{extra}"
            );
        }
        let (_, msg) = one(&format!(
            "providers:{}",
            provider(&[], "    vpc: { cidr: 10.0.1.0/16 }\n")
        ));
        assert!(msg.contains("`10.0.0.0/16`"), "{msg}");
    }

    #[test]
    fn tags() {
        let ok = "    tags:\n      Kostenstelle: Zahlungsverkehr\n      コスト: 支払い\n      team/owner: a+b=c@d.e:f_g-h\n      empty: ''\n";
        assert_eq!(check(&format!("providers:{}", provider(&[], ok))), []);
        let bad =
            "    tags:\n      AWS:Reserved: x\n      'bad\tkey': x\n      good: \"tab\\tvalue\"\n";
        assert_eq!(
            paths(&format!("providers:{}", provider(&[], bad))),
            [
                "providers[0].tags.AWS:Reserved",
                "providers[0].tags.bad\tkey",
                "providers[0].tags.good"
            ]
        );
        let mut many = String::new();
        for i in 0..MAX_USER_TAGS {
            many += "      k";
            many += &i.to_string();
            many += ": v\n";
        }
        assert_eq!(
            check(&format!(
                "providers:{}",
                provider(&[], &format!("    tags:\n{many}"))
            )),
            []
        );
    }

    #[test]
    fn name_rules() {
        assert_eq!(provider_name_problem("a"), None);
        assert_eq!(provider_name_problem("payments-dev-2"), None);
        assert_eq!(provider_name_problem(&"a".repeat(63)), None);
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "aB",
            "a_b",
            "a.b",
            "1a",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(provider_name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(slug_problem("Opa", MAX_PREFIX).is_some_and(|m| m.contains("uppercase")));
        assert_eq!(slug_problem("opa-", MAX_PREFIX), None);
    }

    #[test]
    fn entity_refs() {
        for ok in [
            "group:payments",
            "payments",
            "user:default/jane.doe",
            "Group:Team_A",
            "default/x",
            "g:1",
        ] {
            assert_eq!(entity_ref_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "group:",
            ":x",
            "group:/x",
            "a/b/c",
            "group:a:b",
            "group:-a",
            "pay ments",
            "group:é",
        ] {
            assert!(entity_ref_problem(bad).is_some(), "{bad:?}");
        }
        assert!(entity_ref_problem(&format!("group:{}", "a".repeat(64))).is_some());
    }

    #[test]
    fn backstage_names_and_tags() {
        for ok in ["shop-dev", "Shop.Dev_1", "a"] {
            assert_eq!(backstage_name_problem(ok), None, "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_.b", "a b", &"a".repeat(64)] {
            assert!(backstage_name_problem(bad).is_some(), "{bad:?}");
        }
        for ok in ["aws", "team-payments", "c++", "k8s:prod", "#1"] {
            assert_eq!(backstage_tag_problem(ok), None, "{ok}");
        }
        for bad in ["", "AWS", "a--b", "-a", "a_b", "a b"] {
            assert!(backstage_tag_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn aws_ids() {
        assert!(is_aws_id("vpc-0a1b2c3d", "vpc"));
        assert!(is_aws_id("vpc-0a1b2c3d4e5f60718", "vpc"));
        assert!(is_aws_id("subnet-0a1b2c3d", "subnet"));
        for bad in [
            "vpc-0a1b2c3",
            "vpc-0a1b2c3d4",
            "vpc-0A1B2C3D",
            "vpc0a1b2c3d",
            "subnet-0a1b2c3d",
            "vpc-",
            "",
        ] {
            assert!(!is_aws_id(bad, "vpc"), "{bad}");
        }
    }

    fn two(p0: &[(&str, &str)], p1: &[(&str, &str)]) -> String {
        let second = provider(p1, "    vpc: { cidr: 10.1.0.0/24 }\n");
        format!("providers:{}{second}", provider(p0, ""))
    }

    #[test]
    fn collisions_are_scoped() {
        let a = [("name: payments-dev", "name: api\n    prefix: shop-dev")];
        let b = [("name: payments-dev", "name: dev-api\n    prefix: shop")];
        // Same account and region: one error naming the first provider.
        let (path, msg) = one(&two(&a, &b));
        assert_eq!(path, "providers[1].name");
        assert!(
            msg.contains("`api` (providers[0])") && msg.contains("`shop-dev-api-environment`"),
            "{msg}"
        );
        assert!(
            msg.contains("DynamoDB table name `shop-dev-api-audit`"),
            "{msg}"
        );
        // Another region of the same account: only the IAM roles collide.
        let b_eu = [b[0], ("us-east-1", "eu-west-1")];
        let (path, msg) = one(&two(&a, &b_eu));
        assert_eq!(path, "providers[1].name");
        assert!(
            msg.contains("IAM role name") && !msg.contains("stack"),
            "{msg}"
        );
        assert!(msg.contains("same account 123456789012:"), "{msg}");
        // Another account: no collision at all.
        let b_other = [b[0], ("123456789012", "210987654321")];
        assert_eq!(check(&two(&a, &b_other)), []);
    }

    #[test]
    fn duplicate_names_are_reported_once() {
        // The same name twice would also collide on every derived name; only
        // the duplicate is reported.
        assert_eq!(paths(&two(&[], &[])), ["providers[1].name"]);
    }

    #[test]
    fn derived_names_are_checked_once_per_field() {
        let p = provider(
            &[(
                "name: payments-dev",
                "name: customer-analytics-staging-eu\n    prefix: platform-engineering",
            )],
            "",
        );
        let (path, msg) = one(&format!("providers:{p}"));
        assert_eq!(path, "providers[0].name");
        assert!(msg.contains("operations-role` is 66 characters"), "{msg}");
        assert!(msg.contains("provisioning-role` (68 characters)"), "{msg}");
        // An invalid name is reported as such, not through its derived names.
        let p = provider(
            &[("name: payments-dev", &format!("name: {}", "a".repeat(70)))],
            "",
        );
        let (_, msg) = one(&format!("providers:{p}"));
        assert!(msg.contains("70 characters, more than 63"), "{msg}");
    }

    /// ECS with a kind check on `name` and an overlong derived name at the
    /// same path: the derived-name error is not added on top.
    #[derive(Debug)]
    struct Noisy;

    impl EnvironmentProvider for Noisy {
        fn kind(&self) -> ProviderKind {
            ProviderKind::Ecs
        }
        fn summary(&self) -> &'static str {
            "test provider"
        }
        fn validate(&self, _spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
            errors.push(format!("{path}.name"), None, "kind-specific problem");
        }
        fn derived_names(&self, _spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
            vec![
                DerivedName::new(NameKind::IamRole, "r".repeat(65), format!("{path}.name")),
                DerivedName::new(NameKind::Stack, "9starts-with-digit", format!("{path}.ecs")),
            ]
        }
        fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
            EcsProvider.stacks(spec)
        }
        fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
            EcsProvider.catalog_entity(spec, outputs)
        }
    }

    #[test]
    fn derived_names_skip_fields_already_reported_and_kinds_must_be_registered() {
        let file = parse_str(&format!("providers:{ECS}"), "t").unwrap_or_else(|e| panic!("{e}"));
        let mut registry = Registry::empty();
        registry.register(Arc::new(Noisy));
        let errors = problems(&file, &registry);
        let got: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(got, ["providers[0].name", "providers[0].ecs"], "{errors}");
        assert!(errors.0[1].message.contains("'9'"), "{errors}");

        let errors = problems(&file, &Registry::empty());
        assert_eq!(errors.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "providers[0].kind");
        assert!(errors.0[0].message.contains("registered: none"), "{errors}");
    }

    #[test]
    fn environments() {
        let spec = |envs: &str| format!("providers:{ECS}environments:\n{envs}");
        let env = |extra: &str| {
            format!(
                "  - name: pay-dev\n    shortName: dev\n    owner: group:payments\n    providers: [payments-dev]\n{extra}"
            )
        };
        assert_eq!(
            check(&spec(&env(
                "    level: 100\n    tags: [aws, team-payments]\n    system: payments\n"
            ))),
            []
        );
        assert_eq!(
            paths(&spec(&env("    level: 101\n"))),
            ["environments[0].level"]
        );
        assert_eq!(
            paths(&spec(&env("    tags: [Bad]\n"))),
            ["environments[0].tags[0]"]
        );
        assert_eq!(
            paths(&spec(&env("    lifecycle: Prod\n"))),
            ["environments[0].lifecycle"]
        );
        let dup = format!("{}{}", env(""), env("").replace("pay-dev", "PAY-DEV"));
        assert_eq!(paths(&spec(&dup)), ["environments[1].name"]);
        let long = env("").replace("shortName: dev", &format!("shortName: {}", "d".repeat(33)));
        assert_eq!(paths(&spec(&long)), ["environments[0].shortName"]);
    }

    #[test]
    fn errors_follow_file_order() {
        let p0 = provider(&[("us-east-1", "us-east-9")], "    logRetentionDays: 2\n");
        let p1 = provider(
            &[("payments-dev", "x-"), ("group:payments", "'group: x'")],
            "",
        );
        assert_eq!(
            paths(&format!("providers:{p0}{p1}")),
            [
                "providers[0].region",
                "providers[0].logRetentionDays",
                "providers[1].name",
                "providers[1].owner"
            ]
        );
    }
}
