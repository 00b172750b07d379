//! Serverless environment provider (`serverless`): an Amazon API Gateway
//! REST API backed by AWS Lambda.
//!
//! Creates, on top of [`common::foundation`](super::common::foundation)
//! (KMS key, log group, audit table, network):
//!
//! - a REST API `{base}-api` (`REGIONAL`, `EDGE` or `PRIVATE`); a `PRIVATE`
//!   API gets a resource policy that only lets this account invoke it from
//!   the environment's VPC (`aws:SourceVpc`), and an `execute-api`
//!   interface VPC endpoint in the private subnets, with its own security
//!   group;
//! - a default health route, `GET /health`, integrated (`AWS_PROXY`) with a
//!   small Python Lambda function `{base}-health` that returns the
//!   environment name as JSON. The method uses **`AWS_IAM` authorization**:
//!   callers sign requests with SigV4 and need `execute-api:Invoke` (the
//!   operations and provisioning roles have it for this API). Nothing in
//!   the environment is reachable anonymously;
//! - a deployment and an explicit stage (name from the `StageName`
//!   parameter) with metrics, optional X-Ray tracing, optional throttling,
//!   and, when access logging is on, JSON access logs to the environment
//!   log group plus `INFO` execution logging;
//! - the API id and URL as SSM parameters, and operations and provisioning
//!   statements scoped to this API and to the environment's functions.
//!
//! Only plain `AWS::ApiGateway::*` and `AWS::Lambda::*` resources are used
//! (no SAM transform, no API Gateway v2), so the template deploys
//! unchanged on the local emulator.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::common::{self, ids};
use super::ecs::provider_entity;
use super::names::{DerivedName, NameKind, Names};
use super::{EnvironmentProvider, StackDefinition, StackOutputs};
use crate::catalog::Entity;
use crate::spec::{
    ApiEndpointType, ProviderKind, ProviderSpec, ResolvedVpc, ValidProvider, ValidationErrors,
};
use crate::template::{Output, Parameter, Resource, Template, fns, hex_sha256};

/// Stage name used when the spec names none.
pub const DEFAULT_STAGE_NAME: &str = "api";
/// Pattern a stage name must match (API Gateway's own rule).
pub const STAGE_NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";
/// Allowed steady-state rate limits (requests per second).
pub const THROTTLING_RATE_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Allowed burst limits (requests).
pub const THROTTLING_BURST_RANGE: std::ops::RangeInclusive<u32> = 0..=5_000;
/// Runtime of the health function.
pub const HEALTH_RUNTIME: &str = "python3.12";

/// Logical id of the REST API.
pub const API: &str = "Api";
/// Logical id of the `/health` resource.
pub const HEALTH_RESOURCE: &str = "HealthResource";
/// Logical id of the `GET /health` method.
pub const HEALTH_METHOD: &str = "HealthMethod";
/// Logical id of the health function.
pub const HEALTH_FUNCTION: &str = "HealthFunction";
/// Logical id of the health function's execution role.
pub const HEALTH_ROLE: &str = "HealthFunctionRole";
/// Logical id of the permission letting this API invoke the function.
pub const HEALTH_PERMISSION: &str = "HealthFunctionPermission";
/// Logical id of the health function's security group (VPC placement only).
pub const HEALTH_SECURITY_GROUP: &str = "HealthFunctionSecurityGroup";
/// Prefix of the deployment's logical id; a hash of the routes follows so
/// that changed routes get a new deployment.
pub const DEPLOYMENT_PREFIX: &str = "ApiDeployment";
/// Logical id of the stage.
pub const STAGE: &str = "ApiStage";
/// Logical id of the `execute-api` VPC endpoint (`PRIVATE` only).
pub const VPC_ENDPOINT: &str = "ApiVpcEndpoint";
/// Logical id of the VPC endpoint's security group (`PRIVATE` only).
pub const VPC_ENDPOINT_SECURITY_GROUP: &str = "ApiVpcEndpointSecurityGroup";
/// Logical id of the security group callers attach to reach a `PRIVATE` API
/// in an existing VPC (whose CIDR the template does not know).
pub const CLIENT_SECURITY_GROUP: &str = "ApiClientSecurityGroup";
/// Template parameter holding the stage name.
pub const STAGE_PARAM: &str = "StageName";

/// Output: REST API id.
pub const OUTPUT_REST_API_ID: &str = "RestApiId";
/// Output: id of the API's root resource (`/`).
pub const OUTPUT_ROOT_RESOURCE_ID: &str = "RestApiRootResourceId";
/// Output: invoke URL of the stage.
pub const OUTPUT_API_URL: &str = "ApiUrl";
/// Output: stage name.
pub const OUTPUT_STAGE_NAME: &str = "StageName";
/// Output: health function ARN.
pub const OUTPUT_HEALTH_FUNCTION_ARN: &str = "HealthFunctionArn";
/// Output (`PRIVATE` only): the `execute-api` VPC endpoint id.
pub const OUTPUT_VPC_ENDPOINT_ID: &str = "ApiVpcEndpointId";
/// Output (`PRIVATE` only): the invoke URL through the VPC endpoint's
/// public DNS alias, which works without private DNS.
pub const OUTPUT_PRIVATE_API_URL: &str = "PrivateApiUrl";
/// Output (`PRIVATE` in an existing VPC only): the security group callers
/// attach to reach the VPC endpoint.
pub const OUTPUT_CLIENT_SECURITY_GROUP: &str = "ApiClientSecurityGroupId";

/// JSON access log format: one object per request.
pub const ACCESS_LOG_FORMAT: &str = concat!(
    r#"{"requestId":"$context.requestId","#,
    r#""ip":"$context.identity.sourceIp","#,
    r#""caller":"$context.identity.caller","#,
    r#""user":"$context.identity.user","#,
    r#""requestTime":"$context.requestTime","#,
    r#""httpMethod":"$context.httpMethod","#,
    r#""resourcePath":"$context.resourcePath","#,
    r#""status":"$context.status","#,
    r#""protocol":"$context.protocol","#,
    r#""responseLength":"$context.responseLength"}"#
);

/// Source of the health function (inline `ZipFile`, module `index`).
pub const HEALTH_SOURCE: &str = r#"import json
import os


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {"status": "ok", "environment": os.environ.get("ENVIRONMENT_NAME", "")}
        ),
    }
"#;

/// Serverless environments: API Gateway REST API and Lambda.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerlessProvider;

impl EnvironmentProvider for ServerlessProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Serverless
    }
    fn summary(&self) -> &'static str {
        "Amazon API Gateway REST API with AWS Lambda"
    }
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
        validate_serverless(spec, path, errors);
    }
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
        serverless_names(spec, path)
    }
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        vec![serverless_stack(&spec)]
    }
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
        serverless_entity(&spec, outputs)
    }
    fn account_settings(&self, spec: ValidProvider<'_>) -> Vec<super::AccountSetting> {
        if Settings::of(&spec).access_logging {
            vec![super::AccountSetting::ApiGatewayLogging]
        } else {
            Vec::new()
        }
    }
}

/// The `serverless:` section after defaults (a missing section means all
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings<'a> {
    stage_name: &'a str,
    access_logging: bool,
    endpoint_type: ApiEndpointType,
    rate_limit: Option<u32>,
    burst_limit: Option<u32>,
    tracing: bool,
    /// `healthReservedConcurrency` (default none).
    health_reserved: Option<u32>,
}

impl<'a> Settings<'a> {
    fn of(spec: &'a ProviderSpec) -> Self {
        let s = spec.serverless.as_ref();
        Self {
            stage_name: s
                .and_then(|s| s.stage_name.as_deref())
                .unwrap_or(DEFAULT_STAGE_NAME),
            access_logging: s.and_then(|s| s.access_logging).unwrap_or(true),
            endpoint_type: s.and_then(|s| s.endpoint_type).unwrap_or_default(),
            rate_limit: s.and_then(|s| s.throttling_rate_limit),
            burst_limit: s.and_then(|s| s.throttling_burst_limit),
            tracing: s.and_then(|s| s.tracing).unwrap_or(false),
            health_reserved: s.and_then(|s| s.health_reserved_concurrency),
        }
    }
}

/// Where the VPC-attached parts (health function, VPC endpoint) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// The new VPC this stack creates.
    NewVpc,
    /// An existing VPC whose private subnets the spec lists.
    ExistingVpc,
}

/// `None` when the VPC is existing and its private subnets are unknown:
/// then the function runs outside the VPC and no endpoint can be made.
fn placement(spec: &ProviderSpec) -> Option<Placement> {
    match spec.resolved_vpc() {
        ResolvedVpc::New { .. } => Some(Placement::NewVpc),
        ResolvedVpc::Existing {
            private_subnet_ids, ..
        } if !private_subnet_ids.is_empty() => Some(Placement::ExistingVpc),
        ResolvedVpc::Existing { .. } => None,
    }
}

/// Whether `name` is a valid API Gateway stage name.
fn valid_stage_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_serverless(spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let Some(sls) = spec.serverless.as_ref() else {
        return;
    };
    let base = format!("{path}.serverless");
    if let Some(name) = sls.stage_name.as_deref()
        && !valid_stage_name(name)
    {
        errors.push(
            format!("{base}.stageName"),
            Some(name),
            format!(
                "not a valid stage name: 1–128 letters, digits, `_` or `-` ({STAGE_NAME_PATTERN})"
            ),
        );
    }
    if let Some(rate) = sls.throttling_rate_limit
        && !THROTTLING_RATE_RANGE.contains(&rate)
    {
        errors.push(
            format!("{base}.throttlingRateLimit"),
            Some(&rate.to_string()),
            format!(
                "must be between {} and {} requests per second",
                THROTTLING_RATE_RANGE.start(),
                THROTTLING_RATE_RANGE.end()
            ),
        );
    }
    if let Some(burst) = sls.throttling_burst_limit
        && !THROTTLING_BURST_RANGE.contains(&burst)
    {
        errors.push(
            format!("{base}.throttlingBurstLimit"),
            Some(&burst.to_string()),
            format!(
                "must be between {} and {} requests",
                THROTTLING_BURST_RANGE.start(),
                THROTTLING_BURST_RANGE.end()
            ),
        );
    }
    if sls.health_reserved_concurrency == Some(0) {
        errors.push(
            format!("{base}.healthReservedConcurrency"),
            Some("0"),
            "must be at least 1 (0 stops the function, and /health with it); leave it out to share the account's unreserved concurrency",
        );
    }
    if sls.endpoint_type == Some(ApiEndpointType::Private) && placement(spec).is_none() {
        errors.push(
            format!("{path}.vpc.privateSubnetIds"),
            None,
            "endpointType PRIVATE in an existing VPC needs the VPC's private subnet ids \
             for the execute-api VPC endpoint",
        );
    }
}

fn serverless_names(spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
    let names = Names::of(spec);
    let at = format!("{path}.name");
    let base = &names.base;
    let mut v = names.derived(path);
    if matches!(spec.resolved_vpc(), ResolvedVpc::New { .. }) {
        v.push(DerivedName::new(
            NameKind::IamRole,
            format!("{base}-flow-logs-role"),
            &at,
        ));
    }
    v.push(DerivedName::new(
        NameKind::RestApi,
        format!("{base}-api"),
        &at,
    ));
    v.push(DerivedName::new(
        NameKind::LambdaFunction,
        format!("{base}-health"),
        &at,
    ));
    v.push(DerivedName::new(
        NameKind::IamRole,
        format!("{base}-health-role"),
        &at,
    ));
    if Settings::of(spec).access_logging {
        v.push(DerivedName::new(
            NameKind::IamRole,
            format!("{base}-apigw-logs-role"),
            &at,
        ));
    }
    v
}

/// `arn:…:apigateway:…::/restapis/{api}*`: this API and everything in it.
fn api_management_arn() -> Value {
    fns::sub("arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${Api}*")
}

/// `arn:…:execute-api:…:{api}/*`: invoking any method of this API.
fn api_invoke_arn() -> Value {
    fns::sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*")
}

/// The environment's Lambda functions: `{prefix}-{name}-*` (with versions
/// and aliases).
fn functions_arn() -> Value {
    fns::sub(
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${Prefix}-${EnvironmentName}-*",
    )
}

/// Statements of the operations role: read this API, invoke it (the health
/// route uses IAM authorization) and read the environment's functions.
fn operations_statements() -> Vec<Value> {
    vec![
        common::allow(&["apigateway:GET"], vec![api_management_arn()]),
        common::allow(&["execute-api:Invoke"], vec![api_invoke_arn()]),
        common::allow(
            &[
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:GetFunctionConcurrency",
                "lambda:ListVersionsByFunction",
                "lambda:ListAliases",
            ],
            vec![functions_arn()],
        ),
    ]
}

/// Statements of the provisioning role: manage this API's routes,
/// deployments and stages; manage functions named `{prefix}-{name}-*`; pass
/// roles named `{prefix}-{name}-*` to Lambda only.
fn provisioning_statements() -> Vec<Value> {
    let mut v = operations_statements();
    v.push(common::allow(
        &[
            "apigateway:GET",
            "apigateway:POST",
            "apigateway:PUT",
            "apigateway:PATCH",
            "apigateway:DELETE",
        ],
        vec![api_management_arn()],
    ));
    // Named rather than `lambda:*Function*`: that pattern also matches
    // `ListFunctions` (no resource type) and the code-signing-config
    // actions, which authorize against a code signing config, not a
    // function, so on function ARNs they never applied
    // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
    v.push(common::allow(
        &[
            "lambda:CreateFunction",
            "lambda:CreateFunctionUrlConfig",
            "lambda:DeleteFunction",
            "lambda:DeleteFunctionCodeSigningConfig",
            "lambda:DeleteFunctionConcurrency",
            "lambda:DeleteFunctionEventInvokeConfig",
            "lambda:DeleteFunctionUrlConfig",
            "lambda:GetFunction",
            "lambda:GetFunctionCodeSigningConfig",
            "lambda:GetFunctionConcurrency",
            "lambda:GetFunctionConfiguration",
            "lambda:GetFunctionEventInvokeConfig",
            "lambda:GetFunctionRecursionConfig",
            "lambda:GetFunctionUrlConfig",
            "lambda:InvokeFunction",
            "lambda:InvokeFunctionUrl",
            "lambda:ListFunctionEventInvokeConfigs",
            "lambda:ListFunctionUrlConfigs",
            "lambda:ListVersionsByFunction",
            "lambda:PutFunctionConcurrency",
            "lambda:PutFunctionEventInvokeConfig",
            "lambda:PutFunctionRecursionConfig",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:UpdateFunctionEventInvokeConfig",
            "lambda:UpdateFunctionUrlConfig",
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:PublishVersion",
            "lambda:CreateAlias",
            "lambda:UpdateAlias",
            "lambda:DeleteAlias",
            "lambda:TagResource",
            "lambda:UntagResource",
        ],
        vec![functions_arn()],
    ));
    v.push(json!({
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": fns::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Prefix}-${EnvironmentName}-*"),
        "Condition": { "StringEquals": { "iam:PassedToService": "lambda.amazonaws.com" } }
    }));
    v
}

fn managed_policy(name: &str) -> Value {
    fns::sub(&format!("arn:${{AWS::Partition}}:iam::aws:policy/{name}"))
}

/// DNS suffix of the region's partition.
fn url_suffix(region: &str) -> &'static str {
    if common::partition(region) == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

fn serverless_stack(spec: &ProviderSpec) -> StackDefinition {
    let s = Settings::of(spec);
    let (mut t, mut values) = common::base_template(
        &format!(
            "Harmonix serverless environment: VPC, API Gateway REST API ({}) with a health function, \
             KMS key, log group, audit table, operations and provisioning roles",
            s.endpoint_type.as_str()
        ),
        spec,
    );
    let net = common::foundation(&mut t, spec, &mut values);
    t.parameter(
        STAGE_PARAM,
        Parameter::string("API Gateway stage name").pattern(STAGE_NAME_PATTERN),
    );
    values.insert(STAGE_PARAM.to_owned(), s.stage_name.to_owned());
    let place = placement(spec);

    let endpoint = match (s.endpoint_type, place) {
        (ApiEndpointType::Private, Some(p)) => Some(private_endpoint(&mut t, spec, &net, p)),
        _ => None,
    };
    rest_api(&mut t, spec, s, &net, endpoint.as_ref());
    health_function(&mut t, spec, s, &net, place);
    health_route(&mut t);
    let deployment = deployment(&mut t);
    stage(&mut t, spec, s, &deployment);

    common::environment_roles(
        &mut t,
        spec,
        operations_statements(),
        provisioning_statements(),
    );
    let url = fns::sub("https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}");
    common::ssm_parameter(
        &mut t,
        spec,
        "ApiIdParameter",
        "api-id",
        fns::ref_(API),
        "Environment REST API id",
    );
    common::ssm_parameter(
        &mut t,
        spec,
        "ApiUrlParameter",
        "api-url",
        url.clone(),
        "Environment REST API invoke URL",
    );

    t.output(
        OUTPUT_REST_API_ID,
        Output::new(fns::ref_(API)).description("REST API id"),
    );
    t.output(
        OUTPUT_ROOT_RESOURCE_ID,
        Output::new(fns::get_att(API, "RootResourceId"))
            .description("Id of the REST API's root resource"),
    );
    t.output(
        OUTPUT_API_URL,
        Output::new(url).description("Invoke URL of the stage"),
    );
    // The parameter rather than `Ref ApiStage`: same value, and the local
    // emulator has no Stage resource to resolve.
    t.output(
        OUTPUT_STAGE_NAME,
        Output::new(fns::ref_(STAGE_PARAM)).description("Stage name"),
    );
    t.output(
        OUTPUT_HEALTH_FUNCTION_ARN,
        Output::new(fns::get_att(HEALTH_FUNCTION, "Arn")).description("Health function ARN"),
    );
    common::environment_stack(spec, t, values)
}

/// What the REST API needs from the `PRIVATE` endpoint.
#[derive(Debug, Clone)]
struct PrivateEndpoint {
    /// `Ref` of the VPC endpoint.
    endpoint_id: Value,
}

/// The `execute-api` interface endpoint of a `PRIVATE` API, in the private
/// subnets, and its security group.
///
/// In the new VPC the endpoint accepts HTTPS from the VPC's CIDR and has
/// private DNS on, so the standard invoke URL resolves to it inside the
/// VPC. In an existing VPC the template cannot know the CIDR, so callers
/// attach [`CLIENT_SECURITY_GROUP`]; private DNS stays off there, because it
/// would take over `*.execute-api` name resolution for the whole VPC (and
/// fails when the VPC already has such an endpoint): callers use the
/// endpoint alias URL ([`OUTPUT_PRIVATE_API_URL`]).
fn private_endpoint(
    t: &mut Template,
    spec: &ProviderSpec,
    net: &common::Network,
    place: Placement,
) -> PrivateEndpoint {
    let ingress = match place {
        Placement::NewVpc => json!({
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
            "CidrIp": fns::get_att(ids::VPC, "CidrBlock"),
            "Description": "HTTPS from the environment VPC"
        }),
        Placement::ExistingVpc => {
            t.resource(
                CLIENT_SECURITY_GROUP,
                Resource::new("AWS::EC2::SecurityGroup")
                    .property(
                        "GroupDescription",
                        "Attach to callers of the private API of this environment",
                    )
                    .property("VpcId", net.vpc_id.clone())
                    .property("Tags", common::resource_tags(spec)),
            );
            t.output(
                OUTPUT_CLIENT_SECURITY_GROUP,
                Output::new(fns::ref_(CLIENT_SECURITY_GROUP))
                    .description("Security group that callers of the private API attach"),
            );
            json!({
                "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "SourceSecurityGroupId": fns::ref_(CLIENT_SECURITY_GROUP),
                "Description": "HTTPS from the API client security group"
            })
        }
    };
    t.resource(
        VPC_ENDPOINT_SECURITY_GROUP,
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "execute-api VPC endpoint: HTTPS from the environment",
            )
            .property("VpcId", net.vpc_id.clone())
            .property("SecurityGroupIngress", json!([ingress]))
            .property("Tags", common::resource_tags(spec)),
    );
    let service_prefix = if common::partition(&spec.region) == "aws-cn" {
        "cn.com.amazonaws"
    } else {
        "com.amazonaws"
    };
    t.resource(
        VPC_ENDPOINT,
        Resource::new("AWS::EC2::VPCEndpoint")
            .property("VpcEndpointType", "Interface")
            .property(
                "ServiceName",
                fns::sub(&format!("{service_prefix}.${{AWS::Region}}.execute-api")),
            )
            .property("VpcId", net.vpc_id.clone())
            .property("SubnetIds", net.private_subnets.clone())
            .property("SecurityGroupIds", json!([fns::ref_(VPC_ENDPOINT_SECURITY_GROUP)]))
            .property("PrivateDnsEnabled", place == Placement::NewVpc)
            .property(
                "PolicyDocument",
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "execute-api:Invoke",
                        "Resource": fns::sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*/*")
                    }]
                }),
            ),
    );
    t.output(
        OUTPUT_VPC_ENDPOINT_ID,
        Output::new(fns::ref_(VPC_ENDPOINT)).description("execute-api VPC endpoint id"),
    );
    t.output(
        OUTPUT_PRIVATE_API_URL,
        Output::new(fns::sub(
            "https://${Api}-${ApiVpcEndpoint}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}",
        ))
        .description("Invoke URL through the VPC endpoint alias (works without private DNS)"),
    );
    PrivateEndpoint {
        endpoint_id: fns::ref_(VPC_ENDPOINT),
    }
}

/// The REST API. A `PRIVATE` API is bound to its VPC endpoint and only
/// invocable by this account's principals from the environment's VPC.
fn rest_api(
    t: &mut Template,
    spec: &ProviderSpec,
    s: Settings<'_>,
    net: &common::Network,
    endpoint: Option<&PrivateEndpoint>,
) {
    let mut endpoint_config = json!({ "Types": [s.endpoint_type.as_str()] });
    if let (Some(e), Some(obj)) = (endpoint, endpoint_config.as_object_mut()) {
        obj.insert("VpcEndpointIds".into(), json!([e.endpoint_id.clone()]));
    }
    let policy = (s.endpoint_type == ApiEndpointType::Private).then(|| {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowAccountFromVpc",
                    "Effect": "Allow",
                    "Principal": { "AWS": fns::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                    "Action": "execute-api:Invoke",
                    "Resource": "execute-api:/*",
                    "Condition": { "StringEquals": { "aws:SourceVpc": net.vpc_id.clone() } }
                },
                {
                    "Sid": "DenyOutsideVpc",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": "execute-api:/*",
                    "Condition": { "StringNotEquals": { "aws:SourceVpc": net.vpc_id.clone() } }
                }
            ]
        })
    });
    t.resource(
        API,
        Resource::new("AWS::ApiGateway::RestApi")
            .property("Name", common::name_sub("-api"))
            .property("Description", common::name_sub(" environment API"))
            .property("EndpointConfiguration", endpoint_config)
            .property_opt("Policy", policy)
            .property("Tags", common::resource_tags(spec)),
    );
}

/// The health function, its role, its security group (VPC placement) and
/// the permission for this API to invoke it.
fn health_function(
    t: &mut Template,
    spec: &ProviderSpec,
    s: Settings<'_>,
    net: &common::Network,
    place: Option<Placement>,
) {
    let mut managed = vec![managed_policy("service-role/AWSLambdaBasicExecutionRole")];
    if place.is_some() {
        managed.push(managed_policy(
            "service-role/AWSLambdaVPCAccessExecutionRole",
        ));
    }
    if s.tracing {
        managed.push(managed_policy("AWSXRayDaemonWriteAccess"));
    }
    t.resource(
        HEALTH_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-health-role"))
            .property(
                "Description",
                common::name_sub(" health function execution role"),
            )
            .property(
                "AssumeRolePolicyDocument",
                common::service_trust_policy("lambda.amazonaws.com"),
            )
            .property("ManagedPolicyArns", Value::Array(managed))
            .property(
                "Policies",
                json!([common::policy(
                    "environment-key",
                    vec![common::allow(
                        &["kms:Decrypt"],
                        vec![fns::get_att(ids::KMS_KEY, "Arn")]
                    )]
                )]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    let vpc_config = place.map(|_| {
        t.resource(
            HEALTH_SECURITY_GROUP,
            Resource::new("AWS::EC2::SecurityGroup")
                .property(
                    "GroupDescription",
                    "Health function: no inbound, HTTPS outbound",
                )
                .property("VpcId", net.vpc_id.clone())
                .property(
                    "SecurityGroupEgress",
                    json!([{
                        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                        "CidrIp": "0.0.0.0/0", "Description": "HTTPS to AWS APIs"
                    }]),
                )
                .property("Tags", common::resource_tags(spec)),
        );
        json!({
            "SubnetIds": net.private_subnets.clone(),
            "SecurityGroupIds": [fns::ref_(HEALTH_SECURITY_GROUP)]
        })
    });
    t.resource(
        HEALTH_FUNCTION,
        common::unless_reserved(Resource::new("AWS::Lambda::Function"), s.health_reserved)
            .property("FunctionName", common::name_sub("-health"))
            .property("Description", common::name_sub(" health check"))
            .property("Runtime", HEALTH_RUNTIME)
            .property("Handler", "index.handler")
            .property("Code", json!({ "ZipFile": HEALTH_SOURCE }))
            .property("Role", fns::get_att(HEALTH_ROLE, "Arn"))
            .property("MemorySize", 128)
            .property("Timeout", 5)
            // None by default: new accounts may have a concurrency limit
            // of 10 and Lambda keeps 100 unreserved, so any reservation
            // fails there
            // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html,
            // https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
            .property_opt("ReservedConcurrentExecutions", s.health_reserved)
            .property(
                "Environment",
                json!({ "Variables": { "ENVIRONMENT_NAME": fns::ref_(common::params::ENVIRONMENT_NAME) } }),
            )
            .property("KmsKeyArn", fns::get_att(ids::KMS_KEY, "Arn"))
            .property(
                "LoggingConfig",
                json!({ "LogGroup": fns::ref_(ids::LOG_GROUP), "LogFormat": "JSON" }),
            )
            .property_opt("TracingConfig", s.tracing.then(|| json!({ "Mode": "Active" })))
            .property_opt("VpcConfig", vpc_config)
            .property("Tags", common::resource_tags(spec))
            .checkov_skip(
                "CKV_AWS_116",
                "Invoked synchronously by API Gateway (proxy integration): a dead-letter queue only receives failed asynchronous invocations",
            ),
    );
    t.resource(
        HEALTH_PERMISSION,
        Resource::new("AWS::Lambda::Permission")
            .property("Action", "lambda:InvokeFunction")
            .property("FunctionName", fns::get_att(HEALTH_FUNCTION, "Arn"))
            .property("Principal", "apigateway.amazonaws.com")
            .property("SourceAccount", fns::ref_("AWS::AccountId"))
            .property(
                "SourceArn",
                fns::sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/GET/health"),
            ),
    );
}

/// `GET /health` → the health function (`AWS_PROXY`), IAM-authorized.
fn health_route(t: &mut Template) {
    t.resource(
        HEALTH_RESOURCE,
        Resource::new("AWS::ApiGateway::Resource")
            .property("RestApiId", fns::ref_(API))
            .property("ParentId", fns::get_att(API, "RootResourceId"))
            .property("PathPart", "health"),
    );
    t.resource(
        HEALTH_METHOD,
        Resource::new("AWS::ApiGateway::Method")
            .property("RestApiId", fns::ref_(API))
            .property("ResourceId", fns::ref_(HEALTH_RESOURCE))
            .property("HttpMethod", "GET")
            // SigV4-signed requests only; callers need execute-api:Invoke.
            .property("AuthorizationType", "AWS_IAM")
            .property(
                "Integration",
                json!({
                    "Type": "AWS_PROXY",
                    "IntegrationHttpMethod": "POST",
                    "Uri": fns::sub(
                        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${HealthFunction.Arn}/invocations"
                    )
                }),
            ),
    );
}

/// The deployment. CloudFormation never redeploys an existing deployment,
/// so its logical id carries a hash of the API and its routes: a change
/// there makes a new deployment that the stage then points to.
///
/// It must come after the method (a deployment of an API without methods
/// fails). Its description names the method (`Ref` of a method is its id),
/// which orders the two by reference rather than by `DependsOn`: the same
/// on CloudFormation, and also honoured by tools that ignore `DependsOn`
/// (moto's change-set execution creates resources in key order).
fn deployment(t: &mut Template) -> String {
    let parts: Vec<Option<&Resource>> = [API, HEALTH_RESOURCE, HEALTH_METHOD]
        .iter()
        .map(|id| t.resources.get(*id))
        .collect();
    let hash = hex_sha256(serde_json::to_string(&parts).unwrap_or_default().as_bytes());
    let id = format!("{DEPLOYMENT_PREFIX}{}", hash.get(..10).unwrap_or(&hash));
    t.resource(
        &id,
        Resource::new("AWS::ApiGateway::Deployment")
            .property("RestApiId", fns::ref_(API))
            .property(
                "Description",
                common::name_sub(&format!(" API deployment of method ${{{HEALTH_METHOD}}}")),
            ),
    );
    id
}

/// The stage: metrics, throttling, tracing, and (access logging on) JSON
/// access logs to the environment log group and `INFO` execution logs.
fn stage(t: &mut Template, spec: &ProviderSpec, s: Settings<'_>, deployment: &str) {
    let mut method = BTreeMap::new();
    method.insert("ResourcePath", json!("/*"));
    method.insert("HttpMethod", json!("*"));
    method.insert("MetricsEnabled", json!(true));
    method.insert("DataTraceEnabled", json!(false));
    method.insert(
        "LoggingLevel",
        json!(if s.access_logging { "INFO" } else { "OFF" }),
    );
    if let Some(rate) = s.rate_limit {
        method.insert("ThrottlingRateLimit", json!(rate));
    }
    if let Some(burst) = s.burst_limit {
        method.insert("ThrottlingBurstLimit", json!(burst));
    }
    let mut r = Resource::new("AWS::ApiGateway::Stage")
        .property("RestApiId", fns::ref_(API))
        .property("DeploymentId", fns::ref_(deployment))
        .property("StageName", fns::ref_(STAGE_PARAM))
        .property("Description", common::name_sub(" stage"))
        .property("TracingEnabled", s.tracing)
        .property("MethodSettings", json!([method]))
        .property("Tags", common::resource_tags(spec));
    r = r.checkov_skip(
        "CKV_AWS_120",
        "Response caching is the application's choice (a billed cache cluster with stale reads); the environment's stage does not cache",
    );
    if !s.tracing {
        r = r.checkov_skip(
            "CKV_AWS_73",
            "X-Ray tracing is opt-in (billed per trace): set serverless.tracing: true in the spec",
        );
    }
    if s.access_logging {
        // Needs the region's API Gateway CloudWatch role, an account-level
        // setting of the bootstrap stack (`provider::account`), which the
        // engine deploys before this stack.
        r = r.property(
            "AccessLogSetting",
            json!({
                "DestinationArn": fns::get_att(ids::LOG_GROUP, "Arn"),
                "Format": ACCESS_LOG_FORMAT
            }),
        );
    }
    t.resource(STAGE, r);
}

/// The provider entity, with `apiGatewayId`, `apiUrl` and `stageName`.
///
/// The stage name falls back to the spec (default `api`). The API id only
/// exists once the stack is deployed: without a `RestApiId` output it is
/// empty, and so is the URL unless an `ApiUrl` output exists (with only
/// the id, the standard invoke URL is derived from it).
fn serverless_entity(spec: &ProviderSpec, all: &StackOutputs) -> Entity {
    let names = Names::of(spec);
    let out = all.get(&names.stack);
    let s = Settings::of(spec);
    let stage_name = common::output_or(out, OUTPUT_STAGE_NAME, s.stage_name);
    let api_id = common::output_or(out, OUTPUT_REST_API_ID, "");
    let derived_url = if api_id.is_empty() {
        String::new()
    } else {
        format!(
            "https://{api_id}.execute-api.{}.{}/{stage_name}",
            spec.region,
            url_suffix(&spec.region)
        )
    };
    let api_url = common::output_or(out, OUTPUT_API_URL, derived_url);
    let mut draft = provider_entity(spec, &names, out);
    draft.0.extra.insert("apiGatewayId".into(), api_id);
    draft.0.extra.insert("apiUrl".into(), api_url);
    draft.0.extra.insert("stageName".into(), stage_name);
    draft.finish()
}

#[cfg(test)]
mod tests {
    use super::common::outputs;
    use super::*;
    use crate::provider::test_support::{example, paths, prop, resource};
    use crate::spec::{self, SpecFile};

    fn render(file: &SpecFile, index: usize) -> StackDefinition {
        crate::provider::test_support::render_nth(&ServerlessProvider, file, index)
    }

    fn entity(file: &SpecFile, outputs: &StackOutputs) -> Entity {
        crate::provider::test_support::entity_of(&ServerlessProvider, file, outputs)
    }

    fn errors_of(file: &SpecFile) -> ValidationErrors {
        crate::provider::test_support::errors_of(&ServerlessProvider, file)
    }

    const HEAD: &str = r#"
providers:
  - kind: serverless
    name: api-test
    owner: group:test
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

    /// A one-provider spec: [`HEAD`] plus `extra` (indented provider fields).
    fn spec_with(extra: &str) -> SpecFile {
        spec::parse_str(&format!("{HEAD}{extra}"), "test").expect("test spec parses")
    }

    #[test]
    fn health_reserved_concurrency_is_opt_in_and_at_least_one() {
        let s = render(
            &spec_with("    serverless: { healthReservedConcurrency: 2 }\n"),
            0,
        );
        assert_eq!(
            prop(&s, HEALTH_FUNCTION, "ReservedConcurrentExecutions"),
            &json!(2)
        );
        let errors = errors_of(&spec_with(
            "    serverless: { healthReservedConcurrency: 0 }\n",
        ));
        let text = errors.to_string();
        assert!(
            text.contains("providers[0].serverless.healthReservedConcurrency")
                && text.contains("at least 1"),
            "{text}"
        );
    }

    fn of_type<'a>(s: &'a StackDefinition, kind: &str) -> Vec<&'a str> {
        s.template
            .resources
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn method_setting(s: &StackDefinition) -> &serde_json::Map<String, Value> {
        prop(s, STAGE, "MethodSettings")
            .get(0)
            .and_then(Value::as_object)
            .expect("one method setting")
    }

    #[test]
    fn example_spec_renders_the_full_environment() {
        let s = render(&example("serverless.yaml"), 0);
        assert_eq!(s.name, "opa-orders-dev-environment");
        assert_eq!(s.capabilities, ["CAPABILITY_NAMED_IAM"]);
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        for kind in [
            "AWS::EC2::VPC",
            "AWS::KMS::Key",
            "AWS::Logs::LogGroup",
            "AWS::DynamoDB::Table",
            "AWS::ApiGateway::RestApi",
            "AWS::ApiGateway::Resource",
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::Deployment",
            "AWS::ApiGateway::Stage",
            "AWS::Lambda::Function",
            "AWS::Lambda::Permission",
        ] {
            assert_eq!(of_type(&s, kind).len(), 1, "exactly one {kind}");
        }
        // Only plain API Gateway v1 and Lambda: no SAM, no v2.
        for r in s.template.resources.values() {
            assert!(!r.kind.starts_with("AWS::Serverless::"), "{}", r.kind);
            assert!(!r.kind.starts_with("AWS::ApiGatewayV2::"), "{}", r.kind);
        }
        assert!(!s.template.to_json().contains("Transform"));

        assert_eq!(prop(&s, API, "Name"), &common::name_sub("-api"));
        assert_eq!(
            prop(&s, API, "EndpointConfiguration"),
            &json!({ "Types": ["REGIONAL"] })
        );
        assert!(!resource(&s, API).properties.contains_key("Policy"));
        assert_eq!(
            s.parameters.get(STAGE_PARAM).map(String::as_str),
            Some("dev")
        );
        assert_eq!(
            s.parameters.get("VpcCidr").map(String::as_str),
            Some("10.4.0.0/24")
        );

        // The route: IAM-authorized proxy integration of the health function.
        assert_eq!(prop(&s, HEALTH_METHOD, "AuthorizationType"), "AWS_IAM");
        assert_eq!(prop(&s, HEALTH_METHOD, "HttpMethod"), "GET");
        assert_eq!(prop(&s, HEALTH_METHOD, "Integration")["Type"], "AWS_PROXY");
        assert_eq!(prop(&s, HEALTH_RESOURCE, "PathPart"), "health");

        // The function: inline Python, KMS, reserved concurrency, in the VPC.
        assert_eq!(prop(&s, HEALTH_FUNCTION, "Runtime"), "python3.12");
        assert_eq!(
            prop(&s, HEALTH_FUNCTION, "FunctionName"),
            &common::name_sub("-health")
        );
        let code = prop(&s, HEALTH_FUNCTION, "Code")["ZipFile"]
            .as_str()
            .expect("inline code");
        assert!(code.contains("def handler") && code.contains("ENVIRONMENT_NAME"));
        assert_eq!(
            prop(&s, HEALTH_FUNCTION, "KmsKeyArn"),
            &fns::get_att(ids::KMS_KEY, "Arn")
        );
        // No reservation unless the spec asks: new accounts cannot make any.
        assert!(
            !resource(&s, HEALTH_FUNCTION)
                .properties
                .contains_key("ReservedConcurrentExecutions")
        );
        let vpc = prop(&s, HEALTH_FUNCTION, "VpcConfig");
        assert_eq!(vpc["SubnetIds"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            vpc["SecurityGroupIds"],
            json!([fns::ref_(HEALTH_SECURITY_GROUP)])
        );
        assert!(
            !resource(&s, HEALTH_FUNCTION)
                .properties
                .contains_key("TracingConfig")
        );
        let managed = prop(&s, HEALTH_ROLE, "ManagedPolicyArns").to_string();
        assert!(managed.contains(
            "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        ));
        assert!(managed.contains("AWSLambdaVPCAccessExecutionRole"));
        assert_eq!(
            prop(&s, HEALTH_ROLE, "RoleName"),
            &common::name_sub("-health-role")
        );

        // The permission is scoped to this API.
        let source = prop(&s, HEALTH_PERMISSION, "SourceArn").to_string();
        assert!(source.contains("${Api}/*/GET/health"), "{source}");
        assert_eq!(
            prop(&s, HEALTH_PERMISSION, "Principal"),
            "apigateway.amazonaws.com"
        );

        // Deployment after the method; the stage uses it and the parameter.
        let deployments = of_type(&s, "AWS::ApiGateway::Deployment");
        let dep = deployments.first().expect("deployment");
        assert!(dep.starts_with(DEPLOYMENT_PREFIX));
        assert!(
            resource(&s, dep).depends_on.is_empty(),
            "ordered by reference instead"
        );
        assert_eq!(
            prop(&s, dep, "Description"),
            &fns::sub("${Prefix}-${EnvironmentName} API deployment of method ${HealthMethod}")
        );
        assert_eq!(prop(&s, STAGE, "DeploymentId"), &fns::ref_(dep));
        assert_eq!(prop(&s, STAGE, "StageName"), &fns::ref_(STAGE_PARAM));
        assert_eq!(prop(&s, STAGE, "TracingEnabled"), false);
        let ms = method_setting(&s);
        assert_eq!(ms["ResourcePath"], "/*");
        assert_eq!(ms["HttpMethod"], "*");
        assert_eq!(ms["ThrottlingRateLimit"], 100);
        assert_eq!(ms["ThrottlingBurstLimit"], 200);
        assert_eq!(ms["MetricsEnabled"], true);
        assert_eq!(ms["DataTraceEnabled"], false);
        assert_eq!(ms["LoggingLevel"], "INFO");

        // Access logs to the environment log group, in JSON.
        let access = prop(&s, STAGE, "AccessLogSetting");
        assert_eq!(
            access["DestinationArn"],
            fns::get_att(ids::LOG_GROUP, "Arn")
        );
        let format: Value = serde_json::from_str(access["Format"].as_str().expect("format"))
            .expect("access log format is JSON");
        for key in [
            "requestId",
            "ip",
            "caller",
            "user",
            "requestTime",
            "httpMethod",
            "resourcePath",
            "status",
            "protocol",
            "responseLength",
        ] {
            assert!(format.get(key).is_some(), "access log field {key}");
        }
        // The region's API Gateway CloudWatch role is an account-level
        // setting: in the bootstrap stack, never in an environment's.
        assert!(of_type(&s, "AWS::ApiGateway::Account").is_empty());
        assert!(
            !s.template
                .to_compact_json()
                .contains("AmazonAPIGatewayPushToCloudWatchLogs"),
            "no API Gateway logs role in the environment stack"
        );

        // SSM parameters with explicit names.
        for (id, key) in [("ApiIdParameter", "api-id"), ("ApiUrlParameter", "api-url")] {
            assert_eq!(
                prop(&s, id, "Name"),
                &fns::sub(&format!("/${{Prefix}}/${{EnvironmentName}}/{key}"))
            );
        }

        // Outputs: the serverless ones and the shared ones.
        for key in [
            OUTPUT_REST_API_ID,
            OUTPUT_ROOT_RESOURCE_ID,
            OUTPUT_API_URL,
            OUTPUT_STAGE_NAME,
            OUTPUT_HEALTH_FUNCTION_ARN,
            outputs::VPC_ID,
            outputs::KMS_KEY_ARN,
            outputs::LOG_GROUP,
            outputs::AUDIT_TABLE,
            outputs::OPERATIONS_ROLE_ARN,
            outputs::PROVISIONING_ROLE_ARN,
        ] {
            assert!(s.template.outputs.contains_key(key), "output {key}");
        }
        assert_eq!(
            s.template.outputs[OUTPUT_API_URL].value,
            fns::sub("https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}")
        );
        assert!(!s.template.outputs.contains_key(OUTPUT_VPC_ENDPOINT_ID));
    }

    #[test]
    fn roles_are_scoped_to_this_api_and_environment() {
        let s = render(&example("serverless.yaml"), 0);
        let ops = prop(&s, ids::OPERATIONS_ROLE, "Policies").to_string();
        assert!(ops.contains("apigateway:GET"));
        assert!(ops.contains("arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${Api}*"));
        assert!(!ops.contains("apigateway:DELETE"));
        assert!(!ops.contains("iam:PassRole"));
        let prov = prop(&s, ids::PROVISIONING_ROLE, "Policies");
        let text = prov.to_string();
        assert!(text.contains("apigateway:DELETE"));
        assert!(text.contains("lambda:UpdateFunctionCode"));
        // A wildcard reached actions that never authorize on a function.
        assert!(!text.contains("lambda:*Function*"), "{text}");
        assert!(!text.contains("lambda:ListFunctions\""), "{text}");
        assert!(text.contains("function:${Prefix}-${EnvironmentName}-*"));
        let statements = prov[0]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements");
        let pass = statements
            .iter()
            .find(|st| st["Action"] == "iam:PassRole")
            .expect("PassRole statement");
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "lambda.amazonaws.com"
        );
        assert_eq!(
            pass["Resource"],
            fns::sub(
                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Prefix}-${EnvironmentName}-*"
            )
        );
        // No statement grants API Gateway or Lambda actions on everything.
        for st in statements {
            let action = st["Action"].to_string();
            if action.contains("apigateway:") || action.contains("lambda:") {
                assert_ne!(st["Resource"], json!(["*"]), "{st}");
                assert_ne!(st["Resource"], json!("*"), "{st}");
            }
        }
    }

    #[test]
    fn multi_example_serverless_provider_renders() {
        let file = example("multi.yaml");
        let index = file
            .providers
            .iter()
            .position(|p| p.kind == ProviderKind::Serverless)
            .expect("multi.yaml has a serverless provider");
        let s = render(&file, index);
        assert_eq!(s.name, "opa-shop-dev-api-environment");
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        assert_eq!(
            s.parameters.get(STAGE_PARAM).map(String::as_str),
            Some("dev")
        );
        // Defaults: access logging on, no throttling, no tracing, REGIONAL.
        assert!(
            resource(&s, STAGE)
                .properties
                .contains_key("AccessLogSetting")
        );
        let ms = method_setting(&s);
        assert!(!ms.contains_key("ThrottlingRateLimit"));
        assert!(!ms.contains_key("ThrottlingBurstLimit"));
        assert_eq!(
            prop(&s, API, "EndpointConfiguration")["Types"],
            json!(["REGIONAL"])
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        for file in [
            example("serverless.yaml"),
            spec_with("    serverless: { endpointType: PRIVATE, tracing: true }\n"),
        ] {
            let a = render(&file, 0);
            let b = render(&file, 0);
            assert_eq!(a.template.to_json(), b.template.to_json());
            assert_eq!(a.content_hash(), b.content_hash());
            assert_eq!(a.parameters, b.parameters);
        }
    }

    #[test]
    fn missing_section_means_defaults() {
        let s = render(&spec_with(""), 0);
        assert!(s.template.dangling_references().is_empty());
        assert_eq!(
            s.parameters.get(STAGE_PARAM).map(String::as_str),
            Some(DEFAULT_STAGE_NAME)
        );
        assert!(
            resource(&s, STAGE)
                .properties
                .contains_key("AccessLogSetting")
        );
        assert_eq!(
            prop(&s, API, "EndpointConfiguration")["Types"],
            json!(["REGIONAL"])
        );
        assert!(errors_of(&spec_with("")).is_empty());
    }

    #[test]
    fn access_logging_asks_for_the_account_setting_instead_of_owning_it() {
        let registry = crate::provider::Registry::builtin();
        for (extra, wanted) in [
            ("", vec![crate::provider::AccountSetting::ApiGatewayLogging]),
            ("    serverless: { accessLogging: false }\n", Vec::new()),
        ] {
            let file = spec_with(extra);
            let valid = spec::validate(file, &registry, "test").expect("valid");
            let p = valid.providers().next().expect("one provider");
            assert_eq!(ServerlessProvider.account_settings(p), wanted, "{extra}");
            let s = ServerlessProvider.stacks(p).remove(0);
            assert!(
                of_type(&s, "AWS::ApiGateway::Account").is_empty(),
                "{extra}"
            );
        }
    }

    #[test]
    fn access_logging_off_removes_account_and_log_settings() {
        let s = render(&spec_with("    serverless: { accessLogging: false }\n"), 0);
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        assert!(of_type(&s, "AWS::ApiGateway::Account").is_empty());
        let stage = resource(&s, STAGE);
        assert!(!stage.properties.contains_key("AccessLogSetting"));
        assert!(stage.depends_on.is_empty());
        assert_eq!(method_setting(&s)["LoggingLevel"], "OFF");
        assert!(!s.template.to_json().contains("apigw-logs-role"));
        let names = ServerlessProvider.derived_names(
            &spec_with("    serverless: { accessLogging: false }\n").providers[0],
            "providers[0]",
        );
        assert!(!names.iter().any(|n| n.value.ends_with("-apigw-logs-role")));
    }

    #[test]
    fn tracing_turns_on_xray_for_stage_and_function() {
        let s = render(&spec_with("    serverless: { tracing: true }\n"), 0);
        assert_eq!(prop(&s, STAGE, "TracingEnabled"), true);
        assert_eq!(
            prop(&s, HEALTH_FUNCTION, "TracingConfig"),
            &json!({ "Mode": "Active" })
        );
        assert!(
            prop(&s, HEALTH_ROLE, "ManagedPolicyArns")
                .to_string()
                .contains("AWSXRayDaemonWriteAccess")
        );
    }

    #[test]
    fn private_api_in_new_vpc_gets_endpoint_and_policy() {
        let s = render(&spec_with("    serverless: { endpointType: PRIVATE }\n"), 0);
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        assert_eq!(
            prop(&s, API, "EndpointConfiguration"),
            &json!({ "Types": ["PRIVATE"], "VpcEndpointIds": [fns::ref_(VPC_ENDPOINT)] })
        );
        let policy = prop(&s, API, "Policy");
        let statements = policy["Statement"].as_array().expect("statements");
        assert_eq!(statements.len(), 2);
        for st in statements {
            assert_eq!(st["Action"], "execute-api:Invoke");
        }
        assert_eq!(
            statements[0]["Condition"]["StringEquals"]["aws:SourceVpc"],
            fns::ref_(ids::VPC)
        );
        assert_eq!(statements[1]["Effect"], "Deny");
        assert_eq!(
            statements[1]["Condition"]["StringNotEquals"]["aws:SourceVpc"],
            fns::ref_(ids::VPC)
        );

        assert_eq!(
            prop(&s, VPC_ENDPOINT, "ServiceName"),
            &fns::sub("com.amazonaws.${AWS::Region}.execute-api")
        );
        assert_eq!(prop(&s, VPC_ENDPOINT, "VpcEndpointType"), "Interface");
        assert_eq!(prop(&s, VPC_ENDPOINT, "PrivateDnsEnabled"), true);
        assert_eq!(
            prop(&s, VPC_ENDPOINT, "SubnetIds").as_array().map(Vec::len),
            Some(3)
        );
        assert_eq!(
            prop(&s, VPC_ENDPOINT, "SecurityGroupIds"),
            &json!([fns::ref_(VPC_ENDPOINT_SECURITY_GROUP)])
        );
        let ingress = &prop(&s, VPC_ENDPOINT_SECURITY_GROUP, "SecurityGroupIngress")[0];
        assert_eq!(ingress["FromPort"], 443);
        assert_eq!(ingress["CidrIp"], fns::get_att(ids::VPC, "CidrBlock"));
        assert!(!s.template.resources.contains_key(CLIENT_SECURITY_GROUP));
        assert!(s.template.outputs.contains_key(OUTPUT_VPC_ENDPOINT_ID));
        assert!(s.template.outputs.contains_key(OUTPUT_PRIVATE_API_URL));

        // The policy is part of the deployment hash: a REGIONAL API of the
        // same environment deploys under another logical id.
        let regional = render(&spec_with(""), 0);
        assert_ne!(
            of_type(&s, "AWS::ApiGateway::Deployment"),
            of_type(&regional, "AWS::ApiGateway::Deployment")
        );
        assert!(of_type(&regional, "AWS::EC2::VPCEndpoint").is_empty());
    }

    #[test]
    fn private_api_in_existing_vpc_uses_its_subnets_and_a_client_group() {
        let file = spec_with(
            "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n      privateSubnetIds: [subnet-0a, subnet-0b]\n    serverless: { endpointType: PRIVATE }\n",
        );
        assert!(errors_of(&file).is_empty(), "{}", errors_of(&file));
        let s = render(&file, 0);
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        assert_eq!(
            s.parameters.get("PrivateSubnetIds").map(String::as_str),
            Some("subnet-0a,subnet-0b")
        );
        assert_eq!(
            prop(&s, VPC_ENDPOINT, "SubnetIds"),
            &fns::ref_("PrivateSubnetIds")
        );
        assert_eq!(prop(&s, VPC_ENDPOINT, "PrivateDnsEnabled"), false);
        let ingress = &prop(&s, VPC_ENDPOINT_SECURITY_GROUP, "SecurityGroupIngress")[0];
        assert_eq!(
            ingress["SourceSecurityGroupId"],
            fns::ref_(CLIENT_SECURITY_GROUP)
        );
        assert!(
            s.template
                .outputs
                .contains_key(OUTPUT_CLIENT_SECURITY_GROUP)
        );
        assert_eq!(
            prop(&s, API, "Policy")["Statement"][0]["Condition"]["StringEquals"]["aws:SourceVpc"],
            fns::ref_("VpcId")
        );
        assert_eq!(
            prop(&s, HEALTH_FUNCTION, "VpcConfig")["SubnetIds"],
            fns::ref_("PrivateSubnetIds")
        );
    }

    #[test]
    fn existing_vpc_without_subnets_keeps_the_function_outside() {
        let file = spec_with("    vpc: { mode: existing, id: vpc-0123456789abcdef0 }\n");
        assert!(errors_of(&file).is_empty());
        let s = render(&file, 0);
        assert!(
            s.template.dangling_references().is_empty(),
            "{:?}",
            s.template.dangling_references()
        );
        assert!(
            !resource(&s, HEALTH_FUNCTION)
                .properties
                .contains_key("VpcConfig")
        );
        assert!(!s.template.resources.contains_key(HEALTH_SECURITY_GROUP));
        assert!(
            !prop(&s, HEALTH_ROLE, "ManagedPolicyArns")
                .to_string()
                .contains("VPCAccess")
        );
        assert!(of_type(&s, "AWS::EC2::VPCEndpoint").is_empty());
    }

    #[test]
    fn china_regions_use_their_endpoint_service_and_suffix() {
        let file = spec::parse_str(
            &(HEAD
                .replace("us-east-1", "cn-north-1")
                .replace("arn:aws:iam::123456789012", "arn:aws-cn:iam::123456789012")
                + "    serverless: { endpointType: PRIVATE }\n"),
            "test",
        )
        .expect("parses");
        let s = render(&file, 0);
        assert_eq!(
            prop(&s, VPC_ENDPOINT, "ServiceName"),
            &fns::sub("cn.com.amazonaws.${AWS::Region}.execute-api")
        );
        let mut outputs = StackOutputs::new();
        outputs.insert(
            "opa-api-test-environment".into(),
            BTreeMap::from([(OUTPUT_REST_API_ID.to_owned(), "abc123defg".to_owned())]),
        );
        let e = entity(&file, &outputs);
        assert_eq!(
            e.metadata["apiUrl"],
            "https://abc123defg.execute-api.cn-north-1.amazonaws.com.cn/api"
        );
    }

    #[test]
    fn entity_without_outputs_uses_derived_values() {
        let file = example("serverless.yaml");
        let e = entity(&file, &StackOutputs::new());
        assert_eq!(e.kind, "AWSEnvironmentProvider");
        let m = &e.metadata;
        assert_eq!(m["name"], "orders-dev");
        assert_eq!(m["envType"], "aws-serverless");
        assert_eq!(m["clusterName"], "");
        assert_eq!(m["stageName"], "dev");
        assert_eq!(m["apiGatewayId"], "");
        assert_eq!(m["apiUrl"], "");
        assert_eq!(m["stackName"], "opa-orders-dev-environment");
        assert_eq!(m["auditTable"], "opa-orders-dev-audit");
        assert_eq!(
            m["operationRole"],
            "arn:aws:iam::123456789012:role/opa-orders-dev-operations-role"
        );
        assert_eq!(
            m["provisioningRole"],
            "arn:aws:iam::123456789012:role/opa-orders-dev-provisioning-role"
        );
        assert_eq!(m["awsAccount"], "123456789012");
        assert_eq!(m["awsRegion"], "us-east-1");
        assert_eq!(e.spec["owner"], "group:orders");
    }

    #[test]
    fn entity_with_outputs_uses_them() {
        let file = example("serverless.yaml");
        let stack_outputs: BTreeMap<String, String> = [
            (OUTPUT_REST_API_ID, "a1b2c3d4e5"),
            (
                OUTPUT_API_URL,
                "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev",
            ),
            (OUTPUT_STAGE_NAME, "dev"),
            (outputs::VPC_ID, "vpc-0abc"),
            (outputs::AUDIT_TABLE, "opa-orders-dev-audit"),
            (
                outputs::OPERATIONS_ROLE_ARN,
                "arn:aws:iam::123456789012:role/ops",
            ),
            (
                outputs::PROVISIONING_ROLE_ARN,
                "arn:aws:iam::123456789012:role/prov",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut all = StackOutputs::new();
        all.insert("opa-orders-dev-environment".into(), stack_outputs);
        let e = entity(&file, &all);
        let m = &e.metadata;
        assert_eq!(m["apiGatewayId"], "a1b2c3d4e5");
        assert_eq!(
            m["apiUrl"],
            "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev"
        );
        assert_eq!(m["stageName"], "dev");
        assert_eq!(m["vpc"], "vpc-0abc");
        assert_eq!(m["clusterName"], "");
        assert_eq!(m["operationRole"], "arn:aws:iam::123456789012:role/ops");
        assert_eq!(m["provisioningRole"], "arn:aws:iam::123456789012:role/prov");

        // Only the id reported: the URL is derived from it and the stage.
        let mut only_id = StackOutputs::new();
        only_id.insert(
            "opa-orders-dev-environment".into(),
            BTreeMap::from([(OUTPUT_REST_API_ID.to_owned(), "zz99yy88xx".to_owned())]),
        );
        let e = entity(&file, &only_id);
        assert_eq!(
            e.metadata["apiUrl"],
            "https://zz99yy88xx.execute-api.us-east-1.amazonaws.com/dev"
        );
    }

    #[test]
    fn each_validation_path_has_a_bad_spec() {
        let cases = [
            (
                "    serverless: { stageName: 'bad stage!' }\n",
                "providers[0].serverless.stageName",
                Some("bad stage!"),
            ),
            (
                "    serverless: { stageName: '' }\n",
                "providers[0].serverless.stageName",
                Some(""),
            ),
            (
                "    serverless: { throttlingRateLimit: 0 }\n",
                "providers[0].serverless.throttlingRateLimit",
                Some("0"),
            ),
            (
                "    serverless: { throttlingRateLimit: 10001 }\n",
                "providers[0].serverless.throttlingRateLimit",
                Some("10001"),
            ),
            (
                "    serverless: { throttlingBurstLimit: 5001 }\n",
                "providers[0].serverless.throttlingBurstLimit",
                Some("5001"),
            ),
            (
                "    vpc: { mode: existing, id: vpc-0123456789abcdef0 }\n    serverless: { endpointType: PRIVATE }\n",
                "providers[0].vpc.privateSubnetIds",
                None,
            ),
        ];
        for (extra, path, value) in cases {
            let errors = errors_of(&spec_with(extra));
            assert_eq!(paths(&errors), [path], "{extra}");
            let e = errors.iter().next().expect("one error");
            assert_eq!(e.value.as_deref(), value, "{extra}");
            assert!(!e.message.is_empty());
        }
        let long = "a".repeat(129);
        let errors = errors_of(&spec_with(&format!(
            "    serverless: {{ stageName: {long} }}\n"
        )));
        assert_eq!(paths(&errors), ["providers[0].serverless.stageName"]);
        // Several problems are all reported.
        let errors = errors_of(&spec_with(
            "    serverless: { stageName: 'x/y', throttlingRateLimit: 0, throttlingBurstLimit: 9999 }\n",
        ));
        assert_eq!(
            paths(&errors),
            [
                "providers[0].serverless.stageName",
                "providers[0].serverless.throttlingRateLimit",
                "providers[0].serverless.throttlingBurstLimit",
            ]
        );
    }

    #[test]
    fn valid_edges_pass_validation() {
        for extra in [
            "    serverless: { stageName: A_b-9, throttlingRateLimit: 1, throttlingBurstLimit: 0 }\n",
            "    serverless: { throttlingRateLimit: 10000, throttlingBurstLimit: 5000 }\n",
            "    serverless: { endpointType: PRIVATE }\n",
            "    serverless: { endpointType: EDGE }\n",
            "    vpc: { mode: existing, id: vpc-0123456789abcdef0 }\n    serverless: { endpointType: REGIONAL }\n",
        ] {
            let errors = errors_of(&spec_with(extra));
            assert!(errors.is_empty(), "{extra}: {errors}");
        }
        let max = "s".repeat(128);
        assert!(
            errors_of(&spec_with(&format!(
                "    serverless: {{ stageName: {max} }}\n"
            )))
            .is_empty()
        );
    }

    #[test]
    fn derived_names_cover_every_named_resource() {
        let file = example("serverless.yaml");
        let names: Vec<(NameKind, String)> = ServerlessProvider
            .derived_names(&file.providers[0], "providers[0]")
            .into_iter()
            .map(|n| {
                assert_eq!(n.path, "providers[0].name");
                (n.kind, n.value)
            })
            .collect();
        for (kind, value) in [
            (NameKind::Stack, "opa-orders-dev-environment"),
            (NameKind::RestApi, "opa-orders-dev-api"),
            (NameKind::LambdaFunction, "opa-orders-dev-health"),
            (NameKind::IamRole, "opa-orders-dev-health-role"),
            (NameKind::IamRole, "opa-orders-dev-apigw-logs-role"),
            (NameKind::IamRole, "opa-orders-dev-flow-logs-role"),
            (NameKind::IamRole, "opa-orders-dev-operations-role"),
            (NameKind::IamRole, "opa-orders-dev-provisioning-role"),
        ] {
            assert!(
                names.contains(&(kind, value.to_owned())),
                "{kind:?} {value}"
            );
        }
        let existing = spec_with("    vpc: { mode: existing, id: vpc-0123456789abcdef0 }\n");
        let names = ServerlessProvider.derived_names(&existing.providers[0], "providers[0]");
        assert!(!names.iter().any(|n| n.value.ends_with("-flow-logs-role")));
        // Every derived name is within AWS limits for the example.
        for n in ServerlessProvider.derived_names(&file.providers[0], "providers[0]") {
            assert_eq!(n.kind.check(&n.value), None);
        }
    }

    #[test]
    fn validation_and_names_never_panic_on_odd_input() {
        let base = spec_with("").providers.remove(0);
        let mut odd = Vec::new();
        let mut p = base.clone();
        p.name = String::new();
        p.prefix = Some(String::new());
        odd.push(p);
        let mut p = base.clone();
        p.serverless = Some(crate::spec::ServerlessSpec {
            stage_name: Some("ünïcødé/ä".repeat(40)),
            throttling_rate_limit: Some(u32::MAX),
            throttling_burst_limit: Some(u32::MAX),
            endpoint_type: Some(ApiEndpointType::Private),
            ..Default::default()
        });
        p.vpc = Some(crate::spec::VpcSpec {
            mode: crate::spec::VpcMode::Existing,
            cidr: None,
            id: None,
            private_subnet_ids: Vec::new(),
            public_subnet_ids: Vec::new(),
            nat_gateways: None,
        });
        odd.push(p);
        let mut p = base;
        p.legacy_vpc_configuration = Some("Use Existing VPC".into());
        p.serverless = Some(crate::spec::ServerlessSpec {
            endpoint_type: Some(ApiEndpointType::Private),
            ..Default::default()
        });
        odd.push(p);
        let expected = [0, 4, 1];
        for (p, want) in odd.iter().zip(expected) {
            let mut errors = ValidationErrors::default();
            ServerlessProvider.validate(p, "providers[0]", &mut errors);
            assert_eq!(errors.len(), want, "{errors}");
            assert!(
                !ServerlessProvider
                    .derived_names(p, "providers[0]")
                    .is_empty()
            );
        }
        // The stage name error echoes a shortened value, never the whole input.
        let mut errors = ValidationErrors::default();
        ServerlessProvider.validate(&odd[1], "providers[0]", &mut errors);
        let stage = errors.iter().next().expect("stage name error");
        assert!(
            stage
                .value
                .as_deref()
                .is_some_and(|v| v.chars().count() < 400)
        );
    }
}
