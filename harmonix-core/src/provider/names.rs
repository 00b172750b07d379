//! Physical resource names derived from a spec, and the AWS limits on them.
//!
//! Every name lives here so that templates, validation and the catalog agree.

use std::fmt;

use crate::spec::ProviderSpec;

/// What a derived name names; decides its AWS limits and uniqueness scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum NameKind {
    /// CloudFormation stack (≤ 128, `[A-Za-z][-A-Za-z0-9]*`; per account and region).
    Stack,
    /// IAM role (≤ 64, `[\w+=,.@-]+`; per account, all regions).
    IamRole,
    /// DynamoDB table (3–255, `[A-Za-z0-9_.-]+`; per account and region).
    DynamoDbTable,
    /// EKS cluster (1–100, `[0-9A-Za-z][A-Za-z0-9_-]*`).
    EksCluster,
    /// ECS cluster (≤ 255, `[A-Za-z0-9_-]+`).
    EcsCluster,
    /// CloudWatch log group (≤ 512, `[\.\-_/#A-Za-z0-9]+`).
    LogGroup,
    /// Lambda function (≤ 64, `[A-Za-z0-9_-]+`).
    LambdaFunction,
    /// KMS alias (≤ 256, `alias/[A-Za-z0-9/_-]+`).
    KmsAlias,
    /// SSM parameter (≤ 1011, `[A-Za-z0-9_./-]+`).
    SsmParameter,
    /// API Gateway REST API name (≤ 1024; not unique in AWS but kept unique here).
    RestApi,
    /// EKS Fargate profile or node group (≤ 63, `[A-Za-z0-9][A-Za-z0-9_-]*`).
    EksChild,
    /// EC2 launch template / Auto Scaling group (≤ 128 / 255).
    Ec2Group,
}

/// Where a name must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameScope {
    /// Unique across the account (IAM).
    Account,
    /// Unique within an account and region.
    Region,
}

impl NameKind {
    /// Human name used in errors.
    pub fn label(self) -> &'static str {
        match self {
            Self::Stack => "CloudFormation stack name",
            Self::IamRole => "IAM role name",
            Self::DynamoDbTable => "DynamoDB table name",
            Self::EksCluster => "EKS cluster name",
            Self::EcsCluster => "ECS cluster name",
            Self::LogGroup => "CloudWatch log group name",
            Self::LambdaFunction => "Lambda function name",
            Self::KmsAlias => "KMS alias",
            Self::SsmParameter => "SSM parameter name",
            Self::RestApi => "API Gateway name",
            Self::EksChild => "EKS Fargate profile / node group name",
            Self::Ec2Group => "EC2 launch template / Auto Scaling group name",
        }
    }

    /// Minimum and maximum length in characters.
    pub fn length(self) -> (usize, usize) {
        match self {
            Self::Stack | Self::Ec2Group => (1, 128),
            Self::IamRole | Self::LambdaFunction => (1, 64),
            Self::DynamoDbTable => (3, 255),
            Self::EksCluster => (1, 100),
            Self::EcsCluster => (1, 255),
            Self::LogGroup => (1, 512),
            Self::KmsAlias => (7, 256),
            Self::SsmParameter => (1, 1011),
            Self::RestApi => (1, 1024),
            Self::EksChild => (1, 63),
        }
    }

    /// Whether `c` may appear in the name (at position `i`).
    pub fn allows(self, i: usize, c: char) -> bool {
        let alnum = c.is_ascii_alphanumeric();
        match self {
            Self::Stack => {
                if i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    alnum || c == '-'
                }
            }
            Self::IamRole => alnum || "+=,.@_-".contains(c),
            Self::DynamoDbTable => alnum || "_.-".contains(c),
            Self::EksCluster | Self::EksChild => {
                if i == 0 {
                    alnum
                } else {
                    alnum || "_-".contains(c)
                }
            }
            Self::EcsCluster | Self::LambdaFunction => alnum || "_-".contains(c),
            Self::LogGroup => alnum || "._-/#".contains(c),
            Self::KmsAlias => alnum || "/_-".contains(c),
            Self::SsmParameter => alnum || "_.-/".contains(c),
            Self::RestApi => !c.is_control(),
            Self::Ec2Group => alnum || "()./_-".contains(c),
        }
    }

    /// Uniqueness scope.
    pub fn scope(self) -> NameScope {
        match self {
            Self::IamRole => NameScope::Account,
            _ => NameScope::Region,
        }
    }

    /// Why `name` breaks this kind's rules, if it does.
    pub fn check(self, name: &str) -> Option<String> {
        let (min, max) = self.length();
        let len = name.chars().count();
        if len < min || len > max {
            return Some(format!(
                "derived {} `{name}` is {len} characters; AWS allows {min}–{max}: shorten the prefix or name",
                self.label()
            ));
        }
        if let Some((_, c)) = name.chars().enumerate().find(|&(i, c)| !self.allows(i, c)) {
            return Some(format!(
                "derived {} `{name}` contains {c:?}, which AWS does not allow there",
                self.label()
            ));
        }
        None
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A physical name derived from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedName {
    /// What it names.
    pub kind: NameKind,
    /// The name.
    pub value: String,
    /// The spec field path the name comes from (for errors).
    pub path: String,
}

impl DerivedName {
    /// A derived name.
    pub fn new(kind: NameKind, value: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
            path: path.into(),
        }
    }
}

/// The names every provider derives from `prefix` and `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `{prefix}-{name}`: the base of every other name.
    pub base: String,
    /// The environment stack: `{prefix}-{name}-environment`.
    pub stack: String,
    /// Operations role (trusted by the platform role).
    pub operations_role: String,
    /// Provisioning role (trusted by the pipeline role).
    pub provisioning_role: String,
    /// DynamoDB audit table.
    pub audit_table: String,
    /// CloudWatch log group.
    pub log_group: String,
    /// KMS key alias.
    pub kms_alias: String,
    /// SSM parameter prefix (`/{prefix}/{name}`).
    pub ssm_prefix: String,
    /// Cluster name (ECS or EKS) when the provider creates one.
    pub cluster: String,
}

impl Names {
    /// Names for a provider spec.
    pub fn of(spec: &ProviderSpec) -> Self {
        let base = format!("{}-{}", spec.prefix(), spec.name);
        Self {
            stack: format!("{base}-environment"),
            operations_role: format!("{base}-operations-role"),
            provisioning_role: format!("{base}-provisioning-role"),
            audit_table: format!("{base}-audit"),
            log_group: format!("/{}/{}/environment", spec.prefix(), spec.name),
            kms_alias: format!("alias/{base}"),
            ssm_prefix: format!("/{}/{}", spec.prefix(), spec.name),
            cluster: format!("{base}-cluster"),
            base,
        }
    }

    /// The common derived names, attributed to the spec fields they come from.
    pub fn derived(&self, path: &str) -> Vec<DerivedName> {
        let at = format!("{path}.name");
        vec![
            DerivedName::new(NameKind::Stack, &self.stack, &at),
            DerivedName::new(NameKind::IamRole, &self.operations_role, &at),
            DerivedName::new(NameKind::IamRole, &self.provisioning_role, &at),
            DerivedName::new(NameKind::DynamoDbTable, &self.audit_table, &at),
            DerivedName::new(NameKind::LogGroup, &self.log_group, &at),
            DerivedName::new(NameKind::KmsAlias, &self.kms_alias, &at),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_after_prefixing() {
        let role = format!("{}-provisioning-role", "x".repeat(47));
        assert_eq!(role.len(), 65);
        let msg = NameKind::IamRole.check(&role).expect("too long");
        assert!(
            msg.contains("65 characters") && msg.contains("1–64"),
            "{msg}"
        );
        assert!(NameKind::IamRole.check(&role[1..]).is_none());
        assert!(NameKind::DynamoDbTable.check("ab").is_some());
        assert!(NameKind::DynamoDbTable.check("abc").is_none());
        assert!(NameKind::EksCluster.check(&"c".repeat(101)).is_some());
        assert!(NameKind::EksCluster.check(&"c".repeat(100)).is_none());
        assert!(NameKind::Stack.check(&"s".repeat(129)).is_some());
    }

    #[test]
    fn stack_names_start_with_a_letter_and_allow_only_dashes() {
        assert!(NameKind::Stack.check("1abc").is_some());
        assert!(NameKind::Stack.check("a_b").is_some());
        assert!(NameKind::Stack.check("a-b-9").is_none());
        assert!(NameKind::IamRole.check("a/b").is_some());
    }

    #[test]
    fn iam_names_are_unique_per_account_others_per_region() {
        assert_eq!(NameKind::IamRole.scope(), NameScope::Account);
        assert_eq!(NameKind::DynamoDbTable.scope(), NameScope::Region);
    }
}
