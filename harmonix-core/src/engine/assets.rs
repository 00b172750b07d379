//! How a template reaches CloudFormation: inline when it fits, otherwise
//! from the account/region's assets bucket.
//!
//! CloudFormation takes at most 51,200 bytes of `TemplateBody` in a
//! request and up to 1 MB from S3 through `TemplateURL` ("Understand
//! CloudFormation quotas",
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>).
//! The engine sends compact JSON inline; a template still over the limit
//! is uploaded to `harmonix-assets-<account>-<region>` under a key made
//! of its SHA-256 (`templates/<sha256>.json`), so a saved plan names
//! exactly the bytes it was planned with, and uploading the same template
//! again writes the same object.
//!
//! The bucket is made by `harmonix bootstrap`, or on first use (like the
//! lock table) unless [`AssetsOptions::create_bucket`] is off:
//! - default encryption SSE-S3 (`PutBucketEncryption`),
//! - versioning on (`PutBucketVersioning`),
//! - every public access blocked (`PutPublicAccessBlock`),
//! - a policy denying any request without TLS (`aws:SecureTransport`,
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html>;
//!   not under a plain-`http://` endpoint override, see [`TemplateStore::s3`]),
//! - a lifecycle rule expiring templates after [`TEMPLATE_EXPIRY_DAYS`],
//!   their old versions after [`NONCURRENT_EXPIRY_DAYS`], and incomplete
//!   uploads after a day.
//!
//! Every request names the expected bucket owner (`ExpectedBucketOwner`,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html>),
//! so a bucket of the same name in another account is never written to.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use tokio::sync::OnceCell;

use super::error::EngineError;
use crate::template::hex_sha256;
use crate::template::quotas::{MAX_INLINE_BODY_BYTES, MAX_S3_BODY_BYTES};

/// Days after which an uploaded template expires (a plan is applied long
/// before; a later plan uploads it again).
pub const TEMPLATE_EXPIRY_DAYS: i32 = 90;
/// Days after which a replaced version of an object expires.
pub const NONCURRENT_EXPIRY_DAYS: i32 = 30;
/// Key prefix of uploaded templates.
pub const TEMPLATE_PREFIX: &str = "templates/";

/// Options of the assets bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetsOptions {
    /// Create and configure the bucket when it is missing (default). Off:
    /// run `harmonix bootstrap` once per account/region first.
    pub create_bucket: bool,
}

impl Default for AssetsOptions {
    fn default() -> Self {
        Self {
            create_bucket: true,
        }
    }
}

/// The assets bucket of an account/region: `harmonix-assets-<account>-<region>`
/// (at most 16 + 12 + 1 + 14 characters, within S3's 63).
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("harmonix-assets-{account}-{region}")
}

/// The HTTPS URL CloudFormation reads an object from (virtual-hosted
/// style, the form S3 documents,
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>).
pub fn object_url(bucket: &str, region: &str, key: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{bucket}.s3.{region}.{suffix}/{key}")
}

/// The key of a template body: `templates/<sha256 of the bytes>.json`.
pub fn template_key(body: &str) -> String {
    format!("{TEMPLATE_PREFIX}{}.json", hex_sha256(body.as_bytes()))
}

/// Where the template of a change set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<'a> {
    /// `TemplateBody`: the compact JSON itself.
    Body(&'a str),
    /// `TemplateURL`: an object of the assets bucket.
    Url(String),
}

/// Delivers templates to CloudFormation for one account/region: inline
/// when they fit, through the assets bucket (made on first use) when not.
/// Cheap to clone; the bucket is checked once per store.
#[derive(Debug, Clone)]
pub struct TemplateStore {
    inner: Option<Arc<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    client: Client,
    account: String,
    region: String,
    name: String,
    opts: AssetsOptions,
    tls_only: bool,
    ready: OnceCell<()>,
}

/// Two stores are equal when they deliver to the same bucket (or both
/// only inline).
impl PartialEq for TemplateStore {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (None, None) => true,
            (Some(a), Some(b)) => a.name == b.name && a.opts == b.opts && a.tls_only == b.tls_only,
            _ => false,
        }
    }
}

impl Eq for TemplateStore {}

impl TemplateStore {
    /// A store that only sends templates inline: a template over the
    /// inline limit is an error naming the stack (for callers without S3
    /// access, and tests).
    pub fn inline_only() -> Self {
        Self { inner: None }
    }

    /// A store on the assets bucket of `account`/`region`. With
    /// `tls_only`, the bucket's policy denies every request without TLS;
    /// the engine sets it unless its endpoint is plain `http://` (an S3
    /// emulator or gateway without TLS, where such a policy would lock
    /// the engine out of its own bucket; AWS's endpoints are HTTPS).
    pub fn s3(
        client: Client,
        account: &str,
        region: &str,
        opts: AssetsOptions,
        tls_only: bool,
    ) -> Self {
        Self {
            inner: Some(Arc::new(Bucket {
                client,
                account: account.to_owned(),
                region: region.to_owned(),
                name: bucket_name(account, region),
                opts,
                tls_only,
                ready: OnceCell::new(),
            })),
        }
    }

    /// How `body` (compact template JSON of `stack`) reaches
    /// CloudFormation: itself when it fits the inline limit, else the URL
    /// of the object it was uploaded to.
    pub async fn deliver<'b>(
        &self,
        stack: &str,
        body: &'b str,
    ) -> Result<Delivery<'b>, EngineError> {
        if body.len() <= MAX_INLINE_BODY_BYTES {
            return Ok(Delivery::Body(body));
        }
        if body.len() > MAX_S3_BODY_BYTES {
            return Err(EngineError::InvalidInput {
                path: stack.to_owned(),
                problem: format!(
                    "the template is {} bytes; CloudFormation reads at most {MAX_S3_BODY_BYTES} \
                     bytes from S3",
                    body.len()
                ),
            });
        }
        let Some(bucket) = &self.inner else {
            return Err(EngineError::InvalidInput {
                path: stack.to_owned(),
                problem: format!(
                    "the template is {} bytes, over CloudFormation's inline limit of \
                     {MAX_INLINE_BODY_BYTES}, and no assets bucket is configured",
                    body.len()
                ),
            });
        };
        bucket.ready.get_or_try_init(|| bucket.ensure()).await?;
        let key = template_key(body);
        bucket
            .client
            .put_object()
            .bucket(&bucket.name)
            .key(&key)
            .expected_bucket_owner(&bucket.account)
            .content_type("application/json")
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| EngineError::aws_in("S3", "PutObject", Some(stack), e))?;
        tracing::debug!(stack, bucket = %bucket.name, key = %key, "template uploaded");
        Ok(Delivery::Url(object_url(
            &bucket.name,
            &bucket.region,
            &key,
        )))
    }

    /// Make sure the bucket exists with its settings (what `harmonix
    /// bootstrap` does): returns the bucket name. Configures it again when
    /// it already exists (every setting is idempotent).
    pub async fn bootstrap(&self) -> Result<Option<String>, EngineError> {
        let Some(bucket) = &self.inner else {
            return Ok(None);
        };
        bucket.create_or_configure(true).await?;
        Ok(Some(bucket.name.clone()))
    }
}

impl Bucket {
    /// The bucket exists (made now when allowed).
    async fn ensure(&self) -> Result<(), EngineError> {
        self.create_or_configure(false).await
    }

    async fn create_or_configure(&self, reconfigure: bool) -> Result<(), EngineError> {
        let head = self
            .client
            .head_bucket()
            .bucket(&self.name)
            .expected_bucket_owner(&self.account)
            .send()
            .await;
        let exists = match head {
            Ok(_) => true,
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_s3::operation::head_bucket::HeadBucketError::is_not_found,
                ) =>
            {
                false
            }
            Err(e) => {
                // HeadBucket answers 403 without a body both when the
                // bucket belongs to another account and when access is
                // denied.
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(403) {
                    return Err(EngineError::InvalidInput {
                        path: self.name.clone(),
                        problem: format!(
                            "the assets bucket exists but not in account {} (or this role may \
                             not read it): S3 bucket names are global; let the role call \
                             s3:ListBucket on it, or remove the other bucket",
                            self.account
                        ),
                    });
                }
                return Err(EngineError::aws_in("S3", "HeadBucket", Some(&self.name), e));
            }
        };
        if exists && !reconfigure {
            return Ok(());
        }
        if !exists {
            if !self.opts.create_bucket {
                return Err(EngineError::InvalidInput {
                    path: self.name.clone(),
                    problem: format!(
                        "the assets bucket for templates over {MAX_INLINE_BODY_BYTES} bytes is \
                         missing in {}/{}: run `harmonix bootstrap` once for this account and \
                         region, or allow creating it",
                        self.account, self.region
                    ),
                });
            }
            self.create().await?;
        }
        self.configure().await
    }

    async fn create(&self) -> Result<(), EngineError> {
        let mut req = self.client.create_bucket().bucket(&self.name);
        // us-east-1 is the default location and refuses a constraint
        // naming it (CreateBucket, "LocationConstraint").
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            // Another run made it at the same time.
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyExists") => Err(EngineError::InvalidInput {
                path: self.name.clone(),
                problem: "the assets bucket name is taken by another account (S3 bucket \
                          names are global)"
                    .to_owned(),
            }),
            Err(e) => Err(EngineError::aws_in(
                "S3",
                "CreateBucket",
                Some(&self.name),
                e,
            )),
        }
    }

    async fn configure(&self) -> Result<(), EngineError> {
        let c = &self.client;
        let name = &self.name;
        let owner = &self.account;
        c.put_public_access_block()
            .bucket(name)
            .expected_bucket_owner(owner)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(s3_error(name, "PutPublicAccessBlock"))?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build()
                    .map_err(build_error(name))?,
            )
            .build();
        c.put_bucket_encryption()
            .bucket(name)
            .expected_bucket_owner(owner)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(build_error(name))?,
            )
            .send()
            .await
            .map_err(s3_error(name, "PutBucketEncryption"))?;
        c.put_bucket_versioning()
            .bucket(name)
            .expected_bucket_owner(owner)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(s3_error(name, "PutBucketVersioning"))?;
        if self.tls_only {
            c.put_bucket_policy()
                .bucket(name)
                .expected_bucket_owner(owner)
                .policy(tls_only_policy(name, &self.region))
                .send()
                .await
                .map_err(s3_error(name, "PutBucketPolicy"))?;
        }
        let lifecycle = LifecycleRule::builder()
            .id("harmonix-expire-old-templates")
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(TEMPLATE_PREFIX)
                    .build(),
            )
            .expiration(
                LifecycleExpiration::builder()
                    .days(TEMPLATE_EXPIRY_DAYS)
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(NONCURRENT_EXPIRY_DAYS)
                    .build(),
            )
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(1)
                    .build(),
            )
            .build()
            .map_err(build_error(name))?;
        c.put_bucket_lifecycle_configuration()
            .bucket(name)
            .expected_bucket_owner(owner)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(lifecycle)
                    .build()
                    .map_err(build_error(name))?,
            )
            .send()
            .await
            .map_err(s3_error(name, "PutBucketLifecycleConfiguration"))?;
        Ok(())
    }
}

/// Maps a builder's missing-field error of a bucket setting (a bug of
/// ours, named with the bucket).
fn build_error(bucket: &str) -> impl Fn(aws_sdk_s3::error::BuildError) -> EngineError + '_ {
    move |e| EngineError::InvalidInput {
        path: bucket.to_owned(),
        problem: e.to_string(),
    }
}

/// Maps an S3 SDK error of `operation` on `bucket`.
fn s3_error<'a, E>(bucket: &'a str, operation: &'static str) -> impl FnOnce(E) -> EngineError + 'a
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| EngineError::aws_in("S3", operation, Some(bucket), e)
}

/// A bucket policy denying every request made without TLS.
pub fn tls_only_policy(bucket: &str, region: &str) -> String {
    let partition = crate::provider::common::partition(region);
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                format!("arn:{partition}:s3:::{bucket}"),
                format!("arn:{partition}:s3:::{bucket}/*"),
            ],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } },
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_urls() {
        let b = bucket_name("123456789012", "ap-southeast-2");
        assert_eq!(b, "harmonix-assets-123456789012-ap-southeast-2");
        assert!(b.len() <= 63);
        let k = template_key("{}");
        assert_eq!(k, format!("templates/{}.json", hex_sha256(b"{}")));
        assert_eq!(
            object_url(&b, "ap-southeast-2", &k),
            format!("https://{b}.s3.ap-southeast-2.amazonaws.com/{k}")
        );
        assert!(object_url("b", "cn-north-1", "k").ends_with(".amazonaws.com.cn/k"));
        let p: serde_json::Value =
            serde_json::from_str(&tls_only_policy(&b, "us-east-1")).expect("policy is JSON");
        assert_eq!(
            p["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
            "false"
        );
    }

    #[tokio::test]
    async fn small_templates_go_inline_and_big_ones_need_a_bucket() {
        let store = TemplateStore::inline_only();
        let small = "{}";
        assert_eq!(
            store.deliver("s", small).await.expect("inline"),
            Delivery::Body(small)
        );
        let big = "x".repeat(MAX_INLINE_BODY_BYTES + 1);
        let err = store.deliver("big-stack", &big).await.expect_err("too big");
        let msg = err.to_string();
        assert!(msg.contains("big-stack") && msg.contains("51200"), "{msg}");
        let huge = "x".repeat(MAX_S3_BODY_BYTES + 1);
        let msg = store
            .deliver("huge", &huge)
            .await
            .expect_err("huge")
            .to_string();
        assert!(msg.contains("1000000"), "{msg}");
    }
}
