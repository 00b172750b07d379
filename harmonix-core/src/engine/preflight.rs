//! The providers' pre-plan checks ([`Preflight`]): live AWS state the
//! stacks rely on but do not create, read before any change set exists so
//! that a target that cannot take the stacks is refused with a clear error
//! instead of failing halfway through an apply. Read-only.

use aws_sdk_eks::error::ProvideErrorMetadata as _;
use aws_sdk_eks::types::AuthenticationMode;

use super::error::EngineError;
use super::events::{Event, EventSink};
use crate::provider::{Preflight, Registry};
use crate::spec::ValidProvider;

/// Run the checks of every provider of one target (one target: one set of
/// clients), in order; the first failure is the error.
pub async fn check_providers(
    registry: &Registry,
    providers: &[ValidProvider<'_>],
    eks: &aws_sdk_eks::Client,
    events: EventSink<'_>,
) -> Result<(), EngineError> {
    for &p in providers {
        let Some(imp) = registry.get(p.kind) else {
            continue;
        };
        for check in imp.preflight(p) {
            run(eks, &check, events).await?;
        }
    }
    Ok(())
}

/// Run one check.
pub async fn run(
    eks: &aws_sdk_eks::Client,
    check: &Preflight,
    events: EventSink<'_>,
) -> Result<(), EngineError> {
    match check {
        Preflight::EksCluster {
            name,
            region,
            access_entries,
        } => eks_cluster(eks, name, region, access_entries, events).await,
        Preflight::EksVersionStep {
            name,
            region,
            version,
        } => eks_version_step(eks, name, region, version).await,
    }
}

/// `major.minor` of a Kubernetes version (`1.35`, `1.35.2`, `v1.35`).
fn minor_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A deployed cluster goes up one minor version per update: "you can
/// update only one minor version at a time"
/// (<https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html>);
/// a bigger step would fail in the middle of the apply. A cluster not
/// found passes (the stack creates it); versions that do not parse, and
/// steps down, are left to EKS.
async fn eks_version_step(
    eks: &aws_sdk_eks::Client,
    name: &str,
    region: &str,
    wanted: &str,
) -> Result<(), EngineError> {
    let resp = match eks.describe_cluster().name(name).send().await {
        Ok(r) => r,
        Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(()),
        Err(e) => return Err(EngineError::aws_in("EKS", "DescribeCluster", None, e)),
    };
    let Some(current) = resp.cluster().and_then(|c| c.version()) else {
        return Ok(());
    };
    let (Some((cm, cn)), Some((wm, wn))) = (minor_version(current), minor_version(wanted)) else {
        return Ok(());
    };
    if wm != cm || wn <= cn + 1 {
        return Ok(());
    }
    let next = format!("{cm}.{}", cn + 1);
    let hint = if crate::spec::SUPPORTED_KUBERNETES_VERSIONS.contains(&next.as_str()) {
        String::new()
    } else if crate::spec::EXTENDED_SUPPORT_KUBERNETES_VERSIONS.contains(&next.as_str()) {
        format!(" with `eks.extendedSupport: true` ({next} is only in extended support)")
    } else {
        format!(
            " ({next} is not offered by this Harmonix release: update the cluster with `aws eks update-cluster-version` first)"
        )
    };
    Err(EngineError::EksVersionJump {
        cluster: name.to_owned(),
        region: region.to_owned(),
        current: current.to_owned(),
        wanted: wanted.to_owned(),
        next,
        hint,
    })
}

/// The cluster exists and is `ACTIVE`
/// (<https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeCluster.html>)
/// and, when the stack creates access entries, is in authentication mode
/// `API` or `API_AND_CONFIG_MAP`: "To begin using access entries, you must
/// change the authentication mode of the cluster to either the
/// API_AND_CONFIG_MAP or API modes"
/// (<https://docs.aws.amazon.com/eks/latest/userguide/setting-up-access-entries.html>).
///
/// A response without `accessConfig.authenticationMode` is let through
/// with a warning: EKS always reports the mode (clusters created through
/// the API or CloudFormation default to `CONFIG_MAP`,
/// <https://docs.aws.amazon.com/eks/latest/APIReference/API_CreateAccessConfigRequest.html>,
/// and report it in `AccessConfigResponse`,
/// <https://docs.aws.amazon.com/eks/latest/APIReference/API_AccessConfigResponse.html>);
/// only a service that does not model it (the moto emulator) omits it,
/// and refusing there would refuse a mode nobody can read.
async fn eks_cluster(
    eks: &aws_sdk_eks::Client,
    name: &str,
    region: &str,
    grants: &[crate::provider::AccessGrant],
    events: EventSink<'_>,
) -> Result<(), EngineError> {
    let unavailable = |reason: String| EngineError::EksClusterUnavailable {
        cluster: name.to_owned(),
        region: region.to_owned(),
        reason,
    };
    let resp = match eks.describe_cluster().name(name).send().await {
        Ok(r) => r,
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            return Err(unavailable(
                "not found in the target account and region: check `eks.existingCluster.name`, `account` and `region`, or create the cluster first".to_owned(),
            ));
        }
        Err(e) => return Err(EngineError::aws_in("EKS", "DescribeCluster", None, e)),
    };
    let Some(c) = resp.cluster() else {
        return Err(unavailable(
            "DescribeCluster returned no cluster".to_owned(),
        ));
    };
    let status = c
        .status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    if status != "ACTIVE" {
        return Err(unavailable(format!(
            "it is {}, not ACTIVE: wait for the operation on it to finish (or fix the cluster) and plan again",
            if status.is_empty() {
                "of unknown status"
            } else {
                &status
            }
        )));
    }
    if grants.is_empty() {
        return Ok(());
    }
    match c.access_config().and_then(|a| a.authentication_mode()) {
        Some(AuthenticationMode::Api | AuthenticationMode::ApiAndConfigMap) => Ok(()),
        Some(mode) => Err(EngineError::EksAuthenticationMode {
            cluster: name.to_owned(),
            region: region.to_owned(),
            mode: mode.as_str().to_owned(),
            grants: grants.to_vec(),
        }),
        None => {
            events(&Event::Warning {
                message: format!(
                    "EKS cluster `{name}` reports no authentication mode; its access entries need API or API_AND_CONFIG_MAP (EKS always reports the mode; an emulator may not)"
                ),
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eks::operation::describe_cluster::{DescribeClusterError, DescribeClusterOutput};
    use aws_sdk_eks::types::error::ResourceNotFoundException;
    use aws_sdk_eks::types::{AccessConfigResponse, Cluster, ClusterStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::error::{Error, codes};
    use crate::provider::AccessGrant;

    const ROLE: &str = "arn:aws:iam::123456789012:role/opa-shared-dev-operations-role";

    fn grant() -> AccessGrant {
        AccessGrant {
            role_arn: ROLE.to_owned(),
            username: "opa-shared-dev-operations-role".to_owned(),
            group: "harmonix-view".to_owned(),
            cluster_role: "view".to_owned(),
            access_policy: "AmazonEKSViewPolicy".to_owned(),
        }
    }

    fn check(grants: Vec<AccessGrant>) -> Preflight {
        Preflight::EksCluster {
            name: "shared-dev-cluster".to_owned(),
            region: "us-east-1".to_owned(),
            access_entries: grants,
        }
    }

    /// A cluster as `DescribeCluster` returns it (fields as in the API
    /// reference's example response), in `status` and `mode`.
    fn cluster(status: ClusterStatus, mode: Option<AuthenticationMode>) -> DescribeClusterOutput {
        let mut c = Cluster::builder()
            .name("shared-dev-cluster")
            .arn("arn:aws:eks:us-east-1:123456789012:cluster/shared-dev-cluster")
            .version("1.35")
            .endpoint("https://A1B2C3D4E5F6.gr7.us-east-1.eks.amazonaws.com")
            .role_arn("arn:aws:iam::123456789012:role/shared-dev-cluster-role")
            .status(status)
            .platform_version("eks.5");
        if let Some(mode) = mode {
            c = c.access_config(
                AccessConfigResponse::builder()
                    .authentication_mode(mode)
                    .bootstrap_cluster_creator_admin_permissions(true)
                    .build(),
            );
        }
        DescribeClusterOutput::builder().cluster(c.build()).build()
    }

    async fn run_with(
        out: DescribeClusterOutput,
        grants: Vec<AccessGrant>,
    ) -> (Result<(), EngineError>, Vec<String>) {
        let rule = mock!(aws_sdk_eks::Client::describe_cluster)
            .match_requests(|r| r.name() == Some("shared-dev-cluster"))
            .then_output(move || out.clone());
        let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&rule]);
        let warnings = std::sync::Mutex::new(Vec::new());
        let sink = |e: &Event| {
            if let Event::Warning { message } = e {
                warnings.lock().expect("lock").push(message.clone());
            }
        };
        let r = run(&eks, &check(grants), &sink).await;
        assert_eq!(rule.num_calls(), 1);
        (r, warnings.into_inner().expect("lock"))
    }

    #[tokio::test]
    async fn config_map_mode_is_refused_with_both_ways_out() {
        let (r, _) = run_with(
            cluster(ClusterStatus::Active, Some(AuthenticationMode::ConfigMap)),
            vec![grant()],
        )
        .await;
        let e = r.expect_err("CONFIG_MAP refused");
        assert!(
            matches!(&e, EngineError::EksAuthenticationMode { cluster, mode, grants, .. }
                if cluster == "shared-dev-cluster" && mode == "CONFIG_MAP" && grants.len() == 1),
            "{e:?}"
        );
        let msg = e.to_string();
        for part in [
            "aws eks update-cluster-config --region us-east-1 --name shared-dev-cluster --access-config authenticationMode=API_AND_CONFIG_MAP",
            "one-way",
            "accessEntries: false",
            &format!(
                "- rolearn: {ROLE}\n    username: opa-shared-dev-operations-role\n    groups:\n      - harmonix-view"
            ),
            "kubectl create clusterrolebinding harmonix-view --clusterrole=view --group=harmonix-view",
        ] {
            assert!(msg.contains(part), "missing {part:?} in:\n{msg}");
        }
        assert_eq!(Error::from(e).code(), codes::PRECONDITION);
    }

    #[tokio::test]
    async fn api_and_api_and_config_map_modes_are_accepted() {
        for mode in [AuthenticationMode::Api, AuthenticationMode::ApiAndConfigMap] {
            let (r, warnings) = run_with(
                cluster(ClusterStatus::Active, Some(mode.clone())),
                vec![grant()],
            )
            .await;
            assert!(r.is_ok(), "{mode:?}: {r:?}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }

    #[tokio::test]
    async fn without_access_entries_the_mode_does_not_matter() {
        let (r, _) = run_with(
            cluster(ClusterStatus::Active, Some(AuthenticationMode::ConfigMap)),
            Vec::new(),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
    }

    #[tokio::test]
    async fn a_missing_mode_passes_with_a_warning() {
        let (r, warnings) = run_with(cluster(ClusterStatus::Active, None), vec![grant()]).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("shared-dev-cluster"), "{warnings:?}");
    }

    #[tokio::test]
    async fn a_cluster_that_is_not_active_is_refused() {
        let (r, _) = run_with(
            cluster(ClusterStatus::Updating, Some(AuthenticationMode::Api)),
            vec![grant()],
        )
        .await;
        let e = r.expect_err("UPDATING refused");
        assert!(
            matches!(&e, EngineError::EksClusterUnavailable { reason, .. } if reason.contains("UPDATING")),
            "{e:?}"
        );
        assert_eq!(Error::from(e).code(), codes::PRECONDITION);
    }

    fn step(version: &str) -> Preflight {
        Preflight::EksVersionStep {
            name: "shared-dev-cluster".to_owned(),
            region: "us-east-1".to_owned(),
            version: version.to_owned(),
        }
    }

    async fn step_with(running: &str, wanted: &str) -> Result<(), EngineError> {
        let mut out = cluster(ClusterStatus::Active, Some(AuthenticationMode::Api));
        if let Some(c) = out.cluster.as_mut() {
            c.version = Some(running.to_owned());
        }
        let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_output(move || out.clone());
        let eks = mock_client!(aws_sdk_eks, [&rule]);
        run(&eks, &step(wanted), &|_: &Event| {}).await
    }

    #[tokio::test]
    async fn a_version_jump_of_more_than_one_minor_is_refused() {
        for (running, wanted) in [("1.35", "1.35"), ("1.35", "1.36"), ("1.36", "1.35")] {
            assert!(
                step_with(running, wanted).await.is_ok(),
                "{running} -> {wanted}"
            );
        }
        let e = step_with("1.33", "1.36").await.expect_err("1.33 -> 1.36");
        assert!(
            matches!(&e, EngineError::EksVersionJump { current, wanted, next, .. }
                if current == "1.33" && wanted == "1.36" && next == "1.34"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("one minor version at a time")
                && msg.contains("`eks.kubernetesVersion: \"1.34\"`")
                && msg.contains("extendedSupport: true"),
            "{msg}"
        );
        assert_eq!(Error::from(e).code(), codes::PRECONDITION);
        let e = step_with("1.34", "1.36").await.expect_err("1.34 -> 1.36");
        assert!(
            !e.to_string().contains("extendedSupport"),
            "1.35 is standard: {e}"
        );
    }

    #[tokio::test]
    async fn a_cluster_not_created_yet_passes_the_version_check() {
        let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_error(not_found);
        let eks = mock_client!(aws_sdk_eks, [&rule]);
        assert!(run(&eks, &step("1.36"), &|_: &Event| {}).await.is_ok());
        assert_eq!(rule.num_calls(), 1);
    }

    /// What EKS answers for an unknown name: HTTP 404,
    /// ResourceNotFoundException.
    fn not_found() -> DescribeClusterError {
        DescribeClusterError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("No cluster found for name: shared-dev-cluster.")
                .meta(
                    aws_sdk_eks::error::ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message("No cluster found for name: shared-dev-cluster.")
                        .build(),
                )
                .build(),
        )
    }

    #[tokio::test]
    async fn a_missing_cluster_is_refused_by_name() {
        let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_error(not_found);
        let eks = mock_client!(aws_sdk_eks, [&rule]);
        let e = run(&eks, &check(vec![grant()]), &|_: &Event| {})
            .await
            .expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("shared-dev-cluster")
                && msg.contains("not found")
                && msg.contains("us-east-1"),
            "{msg}"
        );
        assert_eq!(Error::from(e).code(), codes::PRECONDITION);
    }
}
