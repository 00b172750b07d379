//! The per-account/region bootstrap stack: settings that belong to a whole
//! account and region rather than to one environment.
//!
//! An environment's stack must not own such a setting: two environments in
//! one account would overwrite each other's, and deleting either would
//! undo it for the other. They live in one stack per account/region,
//! [`BOOTSTRAP_STACK`], made by `harmonix bootstrap` or on first use (before
//! an environment that needs it is applied), never deleted with an
//! environment (no spec names it, so `destroy` never plans it).
//!
//! Today it holds the API Gateway CloudWatch Logs role and the
//! `AWS::ApiGateway::Account` setting pointing to it, which REST API
//! stages need for execution and access logging. AWS: "To avoid
//! overwriting other roles, you should only have one
//! AWS::ApiGateway::Account resource per region per account"
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html>);
//! "This configuration is done once per region", per
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html>.
//!
//! The setting is overwritten if the account already has another role set
//! (by hand or by another tool): `harmonix bootstrap` then takes it over,
//! with a role that has AWS's managed policy for exactly this purpose.

use std::collections::BTreeMap;

use serde_json::json;

use super::StackDefinition;
use super::common;
use crate::template::{Output, Resource, Template, fns};

/// Name of the bootstrap stack in every account/region.
pub const BOOTSTRAP_STACK: &str = "harmonix-bootstrap";
/// Logical id of the API Gateway CloudWatch Logs role.
pub const API_GATEWAY_LOGS_ROLE: &str = "ApiGatewayCloudWatchRole";
/// Logical id of the API Gateway account setting.
pub const API_GATEWAY_ACCOUNT: &str = "ApiGatewayAccount";
/// Version of the bootstrap template (a tag; the content hash decides
/// whether it is deployed again).
pub const BOOTSTRAP_VERSION: &str = "1";

/// Account-level settings an environment needs before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AccountSetting {
    /// API Gateway's CloudWatch Logs role for the region (REST API stages
    /// with execution or access logging).
    ApiGatewayLogging,
}

/// The IAM role name of the API Gateway logs role in `region` (role names
/// are global to the account, so the region is part of it).
pub fn api_gateway_logs_role_name(region: &str) -> String {
    format!("harmonix-apigw-cloudwatch-{region}")
}

/// The bootstrap stack of `account`/`region`.
pub fn bootstrap_stack(account: &str, region: &str) -> StackDefinition {
    let mut t = Template::new(
        "Harmonix account/region bootstrap: settings shared by every environment of the account and region (never deleted with an environment)",
    );
    t.resource(
        API_GATEWAY_LOGS_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", api_gateway_logs_role_name(region))
            .property(
                "Description",
                "API Gateway writes execution and access logs of every REST API in this region with this role (account-level setting)",
            )
            .property(
                "AssumeRolePolicyDocument",
                common::service_trust_policy("apigateway.amazonaws.com"),
            )
            .property(
                "ManagedPolicyArns",
                json!([fns::sub(
                    "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )]),
            ),
    );
    t.resource(
        API_GATEWAY_ACCOUNT,
        Resource::new("AWS::ApiGateway::Account").property(
            "CloudWatchRoleArn",
            fns::get_att(API_GATEWAY_LOGS_ROLE, "Arn"),
        ),
    );
    t.output(
        "ApiGatewayCloudWatchRoleArn",
        Output::new(fns::get_att(API_GATEWAY_LOGS_ROLE, "Arn"))
            .description("The role API Gateway writes logs with in this region"),
    );
    let mut tags = BTreeMap::new();
    tags.insert(
        "harmonix:bootstrap".to_owned(),
        BOOTSTRAP_VERSION.to_owned(),
    );
    StackDefinition {
        name: BOOTSTRAP_STACK.to_owned(),
        provider: String::new(),
        account: account.to_owned(),
        region: region.to_owned(),
        template: t,
        parameters: BTreeMap::new(),
        tags,
        depends_on: Vec::new(),
        capabilities: vec!["CAPABILITY_NAMED_IAM".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_stack_holds_the_api_gateway_setting_with_a_regional_role() {
        let s = bootstrap_stack("123456789012", "eu-west-1");
        assert_eq!(s.name, BOOTSTRAP_STACK);
        assert!(s.template.dangling_references().is_empty());
        let role = &s.template.resources[API_GATEWAY_LOGS_ROLE];
        assert_eq!(
            role.properties["RoleName"],
            "harmonix-apigw-cloudwatch-eu-west-1"
        );
        assert!(api_gateway_logs_role_name("ap-southeast-2").len() <= 64);
        let account = &s.template.resources[API_GATEWAY_ACCOUNT];
        assert_eq!(account.kind, "AWS::ApiGateway::Account");
        assert_eq!(
            s.content_hash(),
            bootstrap_stack("123456789012", "eu-west-1").content_hash()
        );
    }
}
