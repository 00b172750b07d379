//! Unit tests of the AWS layer: session names, options, and the role chain
//! against `aws-smithy-mocks` responses shaped like STS's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::Client;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
use aws_sdk_sts::primitives::DateTime;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};

use super::*;

const PIPELINE_ROLE: &str = "arn:aws:iam::111111111111:role/harmonix-pipeline";
const ENV_ROLE: &str = "arn:aws:iam::222222222222:role/opa-envprovisioning-role";
const SECRET: &str = "SECRETsecretSECRET0123456789";
const TOKEN: &str = "TOKENtokenTOKEN0123456789";
const BASE_SECRET: &str = "BASEsecretBASE0123456789";
const EXTERNAL_ID: &str = "EXTERNALid-0123456789";

fn base_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDBASE",
            BASE_SECRET,
            None,
            None,
            "test",
        )))
        .http_client(create_mock_http_client())
        .build()
}

fn opts(pipeline: bool) -> AwsOptions {
    AwsOptions {
        pipeline_role: pipeline.then(|| PIPELINE_ROLE.to_owned()),
        caller: Some("jane.doe".to_owned()),
        max_attempts: Some(1),
        ..AwsOptions::default()
    }
}

fn target() -> Target {
    Target {
        account: "222222222222".to_owned(),
        region: "eu-west-1".to_owned(),
        role_arn: ENV_ROLE.to_owned(),
        environment: "payments-dev".to_owned(),
    }
}

/// An AssumeRole response with credentials valid for `valid_for`.
fn assumed(role_arn: &str, session: &str, valid_for: Duration) -> AssumeRoleOutput {
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let role_name = role_arn.rsplit('/').next().unwrap_or_default();
    AssumeRoleOutput::builder()
        .credentials(
            aws_sdk_sts::types::Credentials::builder()
                .access_key_id("ASIAMOCKMOCKMOCK")
                .secret_access_key(SECRET)
                .session_token(TOKEN)
                .expiration(DateTime::from(SystemTime::now() + valid_for))
                .build()
                .expect("complete credentials"),
        )
        .assumed_role_user(
            aws_sdk_sts::types::AssumedRoleUser::builder()
                .assumed_role_id("AROAMOCK:session")
                .arn(format!(
                    "arn:aws:sts::{account}:assumed-role/{role_name}/{session}"
                ))
                .build()
                .expect("complete user"),
        )
        .build()
}

/// A rule answering AssumeRole of `role` with credentials valid `valid_for`.
fn assume_rule(role: &'static str, valid_for: Duration) -> Rule {
    mock!(Client::assume_role)
        .match_requests(move |r| r.role_arn() == Some(role))
        .then_compute_output(move |r| {
            assumed(role, r.role_session_name().unwrap_or_default(), valid_for)
        })
}

fn pool_with(opts: AwsOptions, rules: &[&Rule]) -> ClientPool {
    let rules: Vec<Rule> = rules.iter().map(|r| (*r).clone()).collect();
    let hook: chain::StsHook = Arc::new(move |builder| {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in &rules {
            interceptor = interceptor.with_rule(rule);
        }
        builder.interceptor(interceptor)
    });
    ClientPool::from_sdk_config(base_config(), opts)
        .expect("valid options")
        .with_sts_hook(hook)
}

async fn provide(clients: &Clients) -> Credentials {
    clients
        .credentials
        .provide_credentials()
        .await
        .expect("credentials")
}

#[test]
fn session_names_are_sanitized() {
    assert_eq!(
        session_name("jane.doe", "payments-dev"),
        "harmonix-jane.doe-payments-dev"
    );
    assert_eq!(
        session_name("Jane Doe/ops", "dev:eu (1)"),
        "harmonix-Jane-Doe-ops-dev-eu--1-"
    );
    assert_eq!(session_name("zoë", "dev"), "harmonix-zo--dev");
    assert_eq!(
        session_name("a+b=c,d@e_f", "x"),
        "harmonix-a+b=c,d@e_f-x",
        "every character STS accepts is kept"
    );
}

#[test]
fn long_session_names_are_truncated_with_a_hash() {
    let a = session_name("ci", &format!("{}-alpha", "e".repeat(80)));
    let b = session_name("ci", &format!("{}-bravo", "e".repeat(80)));
    assert_eq!(a.len(), MAX_SESSION_NAME_LEN);
    assert_eq!(b.len(), MAX_SESSION_NAME_LEN);
    assert_ne!(a, b, "names differing past the cut stay distinct");
    assert!(a.starts_with("harmonix-ci-eeee"), "{a}");
    let suffix = a.rsplit('-').next().expect("hash suffix");
    assert_eq!(suffix.len(), 8);
    assert!(suffix.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_eq!(
        a,
        session_name("ci", &format!("{}-alpha", "e".repeat(80))),
        "stable"
    );
    // Exactly 64 characters is not truncated.
    let exact = session_name("ci", &"x".repeat(64 - "harmonix-ci-".len()));
    assert_eq!(exact.len(), 64);
    assert!(exact.ends_with("xxxx"));
    // Multi-byte characters count as one replaced character each.
    let wide = session_name("ci", &"é".repeat(100));
    assert_eq!(wide.len(), MAX_SESSION_NAME_LEN);
    assert!(wide.bytes().all(|b| b.is_ascii()));
}

#[test]
fn options_are_validated_with_the_field_named() {
    let mut o = AwsOptions::default();
    assert!(o.validate().is_ok());
    assert_eq!(o.session.duration, Duration::from_hours(1));

    o.session.duration = Duration::from_mins(1);
    let e = o.validate().expect_err("too short");
    assert!(
        matches!(
            e,
            AwsError::InvalidOption {
                field: "session.duration",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("900"), "{e}");

    let mut o = AwsOptions::default();
    o.session.source_identity = Some("jane doe".to_owned());
    let e = o.validate().expect_err("space");
    assert!(e.to_string().contains("session.source_identity"), "{e}");
    assert!(e.to_string().contains("`jane doe`"), "{e}");

    let mut o = AwsOptions::default();
    o.session.external_id = Some(format!("{EXTERNAL_ID} with spaces"));
    let e = o.validate().expect_err("space");
    assert!(e.to_string().contains("session.external_id"), "{e}");
    assert!(
        !e.to_string().contains(EXTERNAL_ID),
        "external id leaked: {e}"
    );

    let o = AwsOptions {
        endpoint_url: Some("localhost:5000".to_owned()),
        ..AwsOptions::default()
    };
    assert!(
        o.validate()
            .expect_err("no scheme")
            .to_string()
            .contains("endpoint_url")
    );
    let o = AwsOptions {
        max_attempts: Some(0),
        ..AwsOptions::default()
    };
    assert!(
        o.validate()
            .expect_err("zero")
            .to_string()
            .contains("max_attempts")
    );

    let o = AwsOptions {
        pipeline_role: Some("arn:aws:iam::123:role/x".to_owned()),
        ..AwsOptions::default()
    };
    let e = ClientPool::from_sdk_config(base_config(), o).expect_err("bad pipeline role");
    assert!(
        matches!(&e, AwsError::InvalidRoleArn { step: RoleStep::PipelineRole, role_arn } if role_arn == "arn:aws:iam::123:role/x"),
        "{e:?}"
    );
}

#[test]
fn caller_defaults_and_explicit_value() {
    let o = AwsOptions {
        caller: Some("release-bot".to_owned()),
        ..AwsOptions::default()
    };
    assert_eq!(o.resolved_caller(), "release-bot");
    // Without an explicit caller, some non-empty name is always found.
    assert!(!AwsOptions::default().resolved_caller().is_empty());
}

#[test]
fn role_arns_are_parsed() {
    assert_eq!(pool::role_account(ENV_ROLE), Some("222222222222"));
    assert_eq!(
        pool::role_account("arn:aws-cn:iam::123456789012:role/path/to/r"),
        Some("123456789012")
    );
    for bad in [
        "",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:sts::123456789012:role/x",
        "arn:aws:iam:eu-west-1:123456789012:role/x",
        "arn:aws:iam::123456789012:role/",
        "role/x",
    ] {
        assert_eq!(pool::role_account(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn targets_are_validated() {
    let pool = pool_with(opts(false), &[]);
    let mut t = target();
    t.role_arn = "arn:aws:iam::333333333333:role/other".to_owned();
    let e = pool.clients(&t).await.expect_err("role in another account");
    assert!(
        matches!(
            &e,
            AwsError::InvalidTarget {
                field: "role_arn",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("payments-dev"), "{e}");
    assert!(e.to_string().contains("222222222222"), "{e}");

    let mut t = target();
    t.role_arn = "opa-envprovisioning-role".to_owned();
    let e = pool.clients(&t).await.expect_err("not an ARN");
    assert!(
        matches!(
            &e,
            AwsError::InvalidRoleArn {
                step: RoleStep::EnvironmentRole,
                ..
            }
        ),
        "{e:?}"
    );

    let mut t = target();
    t.account = "2222".to_owned();
    let e = pool.clients(&t).await.expect_err("short account");
    assert!(
        matches!(
            &e,
            AwsError::InvalidTarget {
                field: "account",
                ..
            }
        ),
        "{e:?}"
    );

    let mut t = target();
    t.region = "EU West".to_owned();
    let e = pool.clients(&t).await.expect_err("bad region");
    assert!(
        matches!(
            &e,
            AwsError::InvalidTarget {
                field: "region",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        pool.assume_role_calls(),
        0,
        "nothing sent for invalid targets"
    );
}

#[tokio::test]
async fn credentials_expiring_soon_are_assumed_again() {
    let env = assume_rule(ENV_ROLE, Duration::from_mins(2));
    let pool = pool_with(opts(false), &[&env]);
    let clients = pool.clients(&target()).await.expect("clients");
    assert_eq!(
        env.num_calls(),
        1,
        "assumed once when the clients are built"
    );

    let creds = provide(&clients).await;
    assert_eq!(creds.secret_access_key(), SECRET);
    assert_eq!(
        env.num_calls(),
        2,
        "credentials expiring within 5 minutes are refreshed"
    );
    provide(&clients).await;
    assert_eq!(env.num_calls(), 3);
    assert_eq!(pool.assume_role_calls(), 3);
}

#[tokio::test]
async fn long_lived_credentials_are_cached() {
    let pipeline = assume_rule(PIPELINE_ROLE, Duration::from_hours(2));
    let env = assume_rule(ENV_ROLE, Duration::from_hours(2));
    let pool = pool_with(opts(true), &[&pipeline, &env]);
    let clients = pool.clients(&target()).await.expect("clients");
    assert_eq!((pipeline.num_calls(), env.num_calls()), (1, 1));

    for _ in 0..3 {
        let creds = provide(&clients).await;
        assert_eq!(creds.session_token(), Some(TOKEN));
        assert_eq!(
            creds
                .account_id()
                .map(aws_credential_types::attributes::AccountId::as_str),
            Some("222222222222")
        );
    }
    let again = pool.clients(&target()).await.expect("cached clients");
    assert_eq!(again.session_name, clients.session_name);
    provide(&again).await;
    assert_eq!(
        (pipeline.num_calls(), env.num_calls()),
        (1, 1),
        "all cached"
    );
    assert_eq!(pool.assume_role_calls(), 2);

    // Another environment (another session name) gets its own chain.
    let mut other = target();
    other.environment = "payments-prod".to_owned();
    let o = pool.clients(&other).await.expect("clients");
    assert_eq!(o.session_name, "harmonix-jane.doe-payments-prod");
    assert_eq!(pool.assume_role_calls(), 4);
}

#[tokio::test]
async fn chain_passes_session_parameters() {
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        role: String,
        session: String,
        seconds: Option<i32>,
        external_id: Option<String>,
        source_identity: Option<String>,
    }
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    let rule = mock!(Client::assume_role).then_compute_output(move |r| {
        let role = r.role_arn().unwrap_or_default().to_owned();
        let session = r.role_session_name().unwrap_or_default().to_owned();
        record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Seen {
                role: role.clone(),
                session: session.clone(),
                seconds: r.duration_seconds(),
                external_id: r.external_id().map(str::to_owned),
                source_identity: r.source_identity().map(str::to_owned),
            });
        assumed(&role, &session, Duration::from_hours(2))
    });
    let mut o = opts(true);
    o.session = SessionOptions {
        duration: Duration::from_hours(2),
        external_id: Some(EXTERNAL_ID.to_owned()),
        source_identity: Some("jane.doe".to_owned()),
    };
    let pool = pool_with(o, &[&rule]);
    let clients = pool.clients(&target()).await.expect("clients");
    assert_eq!(clients.session_name, "harmonix-jane.doe-payments-dev");
    assert_eq!(clients.role_arn, ENV_ROLE);
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let session = "harmonix-jane.doe-payments-dev".to_owned();
    assert_eq!(
        seen,
        vec![
            Seen {
                role: PIPELINE_ROLE.to_owned(),
                session: session.clone(),
                seconds: Some(7200),
                external_id: None,
                source_identity: Some("jane.doe".to_owned()),
            },
            Seen {
                role: ENV_ROLE.to_owned(),
                session,
                seconds: Some(3600),
                external_id: Some(EXTERNAL_ID.to_owned()),
                source_identity: None,
            },
        ],
        "the chained environment role is capped at 1 h and gets the external id"
    );
}

/// What STS answers when the caller may not assume the role.
fn access_denied(role: &'static str) -> Rule {
    let body = format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:sts::111111111111:assumed-role/harmonix-pipeline/harmonix-jane.doe-payments-dev is not authorized to perform: sts:AssumeRole on resource: {role}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#
    );
    mock!(Client::assume_role)
        .match_requests(move |r| r.role_arn() == Some(role))
        .sequence()
        .http_status(403, Some(body))
        .repeatedly()
        .build()
}

#[tokio::test]
async fn assume_role_errors_name_the_role_and_step() {
    let pipeline = assume_rule(PIPELINE_ROLE, Duration::from_hours(1));
    let denied = access_denied(ENV_ROLE);
    let pool = pool_with(opts(true), &[&pipeline, &denied]);
    let e = pool.clients(&target()).await.expect_err("access denied");
    let AwsError::AssumeRole {
        step,
        role_arn,
        session_name,
        source,
    } = &e
    else {
        panic!("unexpected error {e:?}");
    };
    assert_eq!(*step, RoleStep::EnvironmentRole);
    assert_eq!(role_arn, ENV_ROLE);
    assert_eq!(session_name, "harmonix-jane.doe-payments-dev");
    assert_eq!(source.code(), Some("AccessDenied"));
    let text = e.to_string();
    assert!(text.contains("environment role"), "{text}");
    assert!(text.contains(ENV_ROLE), "{text}");
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(denied.num_calls(), 1, "a 403 is not retried");

    // The pipeline step failing is reported as such.
    let denied = access_denied(PIPELINE_ROLE);
    let pool = pool_with(opts(true), &[&denied]);
    let e = pool.clients(&target()).await.expect_err("access denied");
    assert!(
        matches!(&e, AwsError::AssumeRole { step: RoleStep::PipelineRole, role_arn, .. } if role_arn == PIPELINE_ROLE),
        "{e:?}"
    );
    assert!(e.to_string().contains("pipeline role"), "{e}");

    // A failed build is not cached: the next call tries again.
    let _ = pool.clients(&target()).await.expect_err("still denied");
    assert_eq!(denied.num_calls(), 2);
}

#[tokio::test]
async fn refresh_failures_reach_the_sdk_call_as_credentials_errors() {
    // Credentials about to expire, then STS refuses: the request through the
    // pooled client fails (it never goes out with stale credentials).
    let env = mock!(Client::assume_role)
        .sequence()
        .output(|| assumed(ENV_ROLE, "s", Duration::from_mins(1)))
        .http_status(
            403,
            Some("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>denied</Message></Error></ErrorResponse>".to_owned()),
        )
        .repeatedly()
        .build();
    let pool = pool_with(opts(false), &[&env]);
    let clients = pool.clients(&target()).await.expect("clients");
    let err = clients
        .credentials
        .provide_credentials()
        .await
        .expect_err("refresh denied");
    let source = std::error::Error::source(&err).expect("source");
    assert!(source.to_string().contains(ENV_ROLE), "{source}");
}

#[tokio::test]
async fn debug_output_shows_no_secret() {
    let env = assume_rule(ENV_ROLE, Duration::from_hours(1));
    let pipeline = assume_rule(PIPELINE_ROLE, Duration::from_hours(1));
    let mut o = opts(true);
    o.session.external_id = Some(EXTERNAL_ID.to_owned());
    let pool = pool_with(o.clone(), &[&pipeline, &env]);
    let clients = pool.clients(&target()).await.expect("clients");
    let creds = provide(&clients).await;
    assert_eq!(
        creds.secret_access_key(),
        SECRET,
        "the secret is really there"
    );
    let provider = &clients.credentials;

    let denied = access_denied(ENV_ROLE);
    let err = pool_with(o.clone(), &[&pipeline, &denied])
        .clients(&target())
        .await
        .expect_err("denied");

    let dumps = [
        format!("{o:?}"),
        format!("{:?}", o.session),
        format!("{pool:?}"),
        format!("{clients:?}"),
        format!("{creds:?}"),
        format!("{provider:?}"),
        format!("{err:?}"),
        format!("{err}"),
    ];
    for dump in &dumps {
        for secret in [SECRET, TOKEN, BASE_SECRET, EXTERNAL_ID] {
            assert!(!dump.contains(secret), "{secret} leaked in {dump}");
        }
    }
    assert!(dumps[0].contains("redacted"), "{}", dumps[0]);
}
