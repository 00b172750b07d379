//! Options of the `backstage-platform` kind (seed `001`): Backstage on
//! ECS Fargate with Aurora PostgreSQL behind an HTTPS load balancer, in
//! several stages.
//!
//! ```yaml
//! platform:
//!   image: { repository: backstage, tag: "1.4.0" }
//!   domain: { hostedZoneId: Z0123456789ABCDEFGHIJ, name: idp.example.com }
//!   stages:
//!     - name: dev
//!       imageTag: "1.5.0-rc.1"       # promotion: change one stage's tag
//!       database: { minCapacity: 0.5, maxCapacity: 2, readers: 0 }
//!     - name: prod
//!       hostName: idp.example.com    # default: <stage>.<domain>
//!       cpu: 2048
//!       memory: 4096
//!       desiredCount: 2
//! ```
//!
//! Values are kept as written; the `backstage-platform` provider checks
//! them (with field paths) and applies the defaults below.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Task CPU units when a stage names none.
pub const DEFAULT_CPU: u32 = 1024;
/// Task memory (MiB) when a stage names none.
pub const DEFAULT_MEMORY: u32 = 2048;
/// Number of Backstage tasks when a stage names none.
pub const DEFAULT_DESIRED_COUNT: u32 = 1;
/// Aurora Serverless v2 minimum capacity (ACUs) when a stage names none.
pub const DEFAULT_MIN_CAPACITY: f64 = 0.5;
/// Aurora Serverless v2 maximum capacity (ACUs) when a stage names none.
pub const DEFAULT_MAX_CAPACITY: f64 = 2.0;
/// Lifecycle whose stages get a reader by default.
pub const PRODUCTION_LIFECYCLE: &str = "production";
/// Readers of a stage's database when it names none: one for the
/// `production` lifecycle, none otherwise.
pub const DEFAULT_PRODUCTION_READERS: u32 = 1;
/// The path the load balancer probes when the spec names none (the
/// readiness endpoint of Backstage's new backend system).
pub const DEFAULT_HEALTH_CHECK_PATH: &str = "/.backstage/health/v1/readiness";

/// Backstage platform options (kind `backstage-platform`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformSpec {
    /// The Backstage container image in Amazon ECR (a repository of the
    /// provider's account and region) and the tag or digest every stage
    /// runs unless it sets its own.
    pub image: ImageSpec,
    /// The custom domain: a Route 53 public hosted zone and its domain name.
    /// Each stage gets a host name in it, an ACM certificate validated by
    /// DNS in the zone, and an alias record to its load balancer.
    pub domain: DomainSpec,
    /// The stages (e.g. `dev`, `prod`), 1 to 10; each is its own
    /// CloudFormation stack with its own service, database and load
    /// balancer, so promoting a stage changes only that stage's stack.
    pub stages: Vec<StageSpec>,
    /// HTTP path the load balancer probes on the Backstage container
    /// (default `/.backstage/health/v1/readiness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
}

/// A container image in Amazon ECR: the repository and exactly one of
/// `tag` and `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    /// ECR repository name in the provider's account and region, e.g.
    /// `backstage` or `platform/backstage`.
    pub repository: String,
    /// Image tag, e.g. `1.4.0` (exactly one of `tag` and `digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Image digest, `sha256:` and 64 hex digits (exactly one of `tag`
    /// and `digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The custom domain of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DomainSpec {
    /// Id of the Route 53 public hosted zone of `name`, e.g.
    /// `Z0123456789ABCDEFGHIJ`.
    pub hosted_zone_id: String,
    /// The zone's domain name, lowercase, e.g. `idp.example.com`.
    pub name: String,
}

/// One stage of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageSpec {
    /// Stage name: 1–20 lowercase letters, digits and single `-`, starting
    /// with a letter (e.g. `dev`, `prod`); unique in the platform.
    pub name: String,
    /// Host name of the stage: the domain itself or a name below it
    /// (default `<name>.<domain.name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Image tag this stage runs instead of `image`'s (at most one of
    /// `imageTag` and `imageDigest`). Promoting a release to a stage is
    /// changing this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    /// Image digest this stage runs instead of `image`'s (`sha256:` and 64
    /// hex digits; at most one of `imageTag` and `imageDigest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Task CPU units, a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or
    /// 16384 (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Task memory in MiB, valid for `cpu` on Fargate (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Number of Backstage tasks, 0 to 50 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<u32>,
    /// The stage's Aurora Serverless v2 database: capacity and readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// NAT gateways of the stage's new VPC, 1 to 3, instead of the
    /// provider's `vpc.natGateways` (whose default follows the provider's
    /// `lifecycle`: 3 for `production`, else 1). E.g. 1 for a `dev` stage
    /// of a production platform. Not allowed in an existing VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3))]
    pub nat_gateways: Option<u32>,
}

/// The Aurora Serverless v2 database of a stage: capacity in Aurora
/// capacity units (ACUs), and reader instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Minimum capacity: 0 to 256 in steps of 0.5 (default 0.5; 0 lets an
    /// idle database pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity: Option<Acu>,
    /// Maximum capacity: 1 to 256 in steps of 0.5, at least
    /// `minCapacity` (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<Acu>,
    /// Reader instances (Aurora Replicas) besides the writer, 0 to 15, each
    /// in another availability zone than the one before (default 1 when
    /// the provider's `lifecycle` is `production`, else 0). Aurora fails
    /// over to a reader when the writer or its zone fails; readers scale
    /// with the writer, so each costs about as much as the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readers: Option<u32>,
}

/// A number of Aurora capacity units. Equality is exact (bitwise), so the
/// spec types stay `Eq`; validation rejects what is not a multiple of 0.5.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Acu(pub f64);

impl PartialEq for Acu {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Acu {}

impl fmt::Display for Acu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PlatformSpec {
    /// The health check path after its default.
    pub fn health_check_path(&self) -> &str {
        self.health_check_path
            .as_deref()
            .unwrap_or(DEFAULT_HEALTH_CHECK_PATH)
    }
}

/// How a stage refers to its image: by tag or by digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRef<'a> {
    /// `repository:tag`.
    Tag(&'a str),
    /// `repository@sha256:…`.
    Digest(&'a str),
}

impl ImageRef<'_> {
    /// The suffix after the repository: `:tag` or `@sha256:…`.
    pub fn suffix(self) -> String {
        match self {
            Self::Tag(t) => format!(":{t}"),
            Self::Digest(d) => format!("@{d}"),
        }
    }
}

impl StageSpec {
    /// The stage's host name: `hostName`, or `<name>.<domain>`.
    pub fn host_name(&self, domain: &str) -> String {
        self.host_name
            .clone()
            .unwrap_or_else(|| format!("{}.{domain}", self.name))
    }
    /// The image reference this stage runs: its own tag or digest, else
    /// the platform's (digest before tag when both are set, which
    /// validation refuses anyway). `None` when neither names one.
    pub fn image_ref<'a>(&'a self, image: &'a ImageSpec) -> Option<ImageRef<'a>> {
        if let Some(d) = self.image_digest.as_deref() {
            return Some(ImageRef::Digest(d));
        }
        if let Some(t) = self.image_tag.as_deref() {
            return Some(ImageRef::Tag(t));
        }
        if let Some(d) = image.digest.as_deref() {
            return Some(ImageRef::Digest(d));
        }
        image.tag.as_deref().map(ImageRef::Tag)
    }
    /// Task CPU units after the default.
    pub fn cpu(&self) -> u32 {
        self.cpu.unwrap_or(DEFAULT_CPU)
    }
    /// Task memory (MiB) after the default.
    pub fn memory(&self) -> u32 {
        self.memory.unwrap_or(DEFAULT_MEMORY)
    }
    /// Desired task count after the default.
    pub fn desired_count(&self) -> u32 {
        self.desired_count.unwrap_or(DEFAULT_DESIRED_COUNT)
    }
    /// Minimum database capacity (ACUs) after the default.
    pub fn min_capacity(&self) -> f64 {
        self.database
            .as_ref()
            .and_then(|d| d.min_capacity)
            .map_or(DEFAULT_MIN_CAPACITY, |a| a.0)
    }
    /// Maximum database capacity (ACUs) after the default.
    pub fn max_capacity(&self) -> f64 {
        self.database
            .as_ref()
            .and_then(|d| d.max_capacity)
            .map_or(DEFAULT_MAX_CAPACITY, |a| a.0)
    }
    /// Reader instances after the default of the provider's `lifecycle`.
    pub fn readers(&self, lifecycle: &str) -> u32 {
        self.database.as_ref().and_then(|d| d.readers).unwrap_or(
            if lifecycle == PRODUCTION_LIFECYCLE {
                DEFAULT_PRODUCTION_READERS
            } else {
                0
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(yaml: &str) -> StageSpec {
        serde_saphyr::from_str(yaml).expect("stage parses")
    }

    #[test]
    fn defaults_apply_and_the_stage_overrides_the_image() {
        let image = ImageSpec {
            repository: "backstage".into(),
            tag: Some("1.0.0".into()),
            digest: None,
        };
        let s = stage("name: dev\n");
        assert_eq!(s.host_name("idp.example.com"), "dev.idp.example.com");
        assert_eq!(s.image_ref(&image), Some(ImageRef::Tag("1.0.0")));
        assert_eq!((s.cpu(), s.memory(), s.desired_count()), (1024, 2048, 1));
        assert_eq!((s.min_capacity(), s.max_capacity()), (0.5, 2.0));
        assert_eq!(s.readers("production"), 1);
        assert_eq!(s.readers("experimental"), 0);

        let s = stage(
            "name: prod\nhostName: idp.example.com\nimageTag: 1.1.0\ndatabase: { minCapacity: 1, maxCapacity: 8.5 }\n",
        );
        assert_eq!(s.host_name("idp.example.com"), "idp.example.com");
        assert_eq!(
            s.image_ref(&image).map(ImageRef::suffix),
            Some(":1.1.0".into())
        );
        assert_eq!((s.min_capacity(), s.max_capacity()), (1.0, 8.5));
        assert_eq!(s.readers("production"), 1);
        let s = stage("name: prod\ndatabase: { readers: 0 }\n");
        assert_eq!(s.readers("production"), 0);
        let s = stage("name: dev\ndatabase: { readers: 2 }\n");
        assert_eq!(s.readers("experimental"), 2);

        let digest = format!("sha256:{}", "a".repeat(64));
        let s = stage(&format!("name: qa\nimageDigest: {digest}\n"));
        assert_eq!(
            s.image_ref(&image).map(ImageRef::suffix),
            Some(format!("@{digest}"))
        );
    }

    #[test]
    fn unknown_fields_are_refused_and_capacities_compare_exactly() {
        assert!(serde_saphyr::from_str::<StageSpec>("name: dev\nreplicas: 2\n").is_err());
        assert_eq!(Acu(0.5), Acu(0.5));
        assert_ne!(Acu(0.5), Acu(1.0));
        assert_eq!(Acu(f64::NAN), Acu(f64::NAN), "bitwise: Eq holds");
    }
}
