//! IAM role ARNs: `arn:<partition>:iam::<account>:role/<path/>name`.

/// The partitions a role ARN may name.
pub(crate) const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// Longest IAM role name.
pub(crate) const MAX_ROLE_NAME: usize = 64;
/// Longest IAM path (including the slashes).
pub(crate) const MAX_ROLE_PATH: usize = 512;

/// A parsed IAM role ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoleArn<'a> {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: &'a str,
    /// The 12-digit account id.
    pub account: &'a str,
}

/// The example shown in ARN errors.
pub(crate) const EXAMPLE: &str = "arn:aws:iam::123456789012:role/my-role";

impl<'a> RoleArn<'a> {
    /// Parse a role ARN; the message says which part is wrong.
    pub fn parse(s: &'a str) -> Result<Self, String> {
        let shape = || {
            format!(
                "not an IAM role ARN; expected `arn:<partition>:iam::<account>:role/<name>`, e.g. `{EXAMPLE}`"
            )
        };
        let mut parts = s.splitn(6, ':');
        let (
            Some(arn),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(shape());
        };
        if arn != "arn" {
            return Err(shape());
        }
        if !PARTITIONS.contains(&partition) {
            return Err(format!(
                "unknown partition `{partition}`; allowed: {}",
                PARTITIONS.join(", ")
            ));
        }
        if service != "iam" {
            return Err(format!(
                "service is `{service}`; a role ARN has service `iam`"
            ));
        }
        if !region.is_empty() {
            return Err(format!(
                "IAM ARNs have no region; found `{region}` (write `iam::<account>`)"
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("account `{account}` is not 12 digits"));
        }
        let Some(rest) = resource.strip_prefix("role/") else {
            return Err(format!(
                "resource `{resource}` is not a role; expected `role/<name>` (or `role/<path>/<name>`)"
            ));
        };
        // `path` keeps its slashes: `role/a/b/name` has path `/a/b/`.
        let (path, name) = match rest.rsplit_once('/') {
            Some((dir, name)) => (resource.get(4..6 + dir.len()).unwrap_or("/"), name),
            None => ("/", rest),
        };
        if name.is_empty() {
            return Err("role name is empty".to_owned());
        }
        if name.chars().count() > MAX_ROLE_NAME {
            return Err(format!(
                "role name `{name}` is {} characters; IAM allows at most {MAX_ROLE_NAME}",
                name.chars().count()
            ));
        }
        if let Some(c) = name.chars().find(|c| !is_iam_name_char(*c)) {
            return Err(format!(
                "role name `{name}` contains {c:?}; IAM allows letters, digits and `+=,.@_-`"
            ));
        }
        if path.len() > MAX_ROLE_PATH {
            return Err(format!(
                "role path is {} characters; IAM allows at most {MAX_ROLE_PATH}",
                path.len()
            ));
        }
        let inner = path.strip_prefix('/').and_then(|p| p.strip_suffix('/'));
        if path != "/"
            && inner.is_none_or(|p| {
                p.split('/')
                    .any(|seg| seg.is_empty() || !seg.chars().all(is_iam_name_char))
            })
        {
            return Err(format!(
                "role path `{path}` is malformed; path segments are letters, digits and `+=,.@_-`, separated by single `/`"
            ));
        }
        Ok(Self { partition, account })
    }
}

/// Characters of IAM names (`[\w+=,.@-]`, ASCII).
pub(crate) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_pathed_roles() {
        let a = RoleArn::parse("arn:aws:iam::123456789012:role/opa-envprovisioning-role");
        assert_eq!(
            a,
            Ok(RoleArn {
                partition: "aws",
                account: "123456789012",
            })
        );
        let b = RoleArn::parse("arn:aws-us-gov:iam::000000000001:role/team/ci/deployer@x");
        assert_eq!(
            b,
            Ok(RoleArn {
                partition: "aws-us-gov",
                account: "000000000001",
            })
        );
        assert!(RoleArn::parse("arn:aws-cn:iam::123456789012:role/a").is_ok());
        assert!(
            RoleArn::parse("arn:aws:iam::123456789012:role/service-role/a_b+c=d,e.f@g").is_ok()
        );
    }

    #[test]
    fn rejects_with_reason() {
        let cases = [
            ("", "not an IAM role ARN"),
            ("my-role", "not an IAM role ARN"),
            ("arn:aws:iam::123456789012", "not an IAM role ARN"),
            ("ARN:aws:iam::123456789012:role/x", "not an IAM role ARN"),
            ("arn:aws-xx:iam::123456789012:role/x", "unknown partition"),
            ("arn:aws:s3:::bucket/x", "service is `s3`"),
            ("arn:aws:iam:us-east-1:123456789012:role/x", "no region"),
            ("arn:aws:iam::12345678901:role/x", "not 12 digits"),
            ("arn:aws:iam::1234567890ab:role/x", "not 12 digits"),
            ("arn:aws:iam::123456789012:user/x", "not a role"),
            ("arn:aws:iam::123456789012:role/", "empty"),
            ("arn:aws:iam::123456789012:role/a/", "empty"),
            ("arn:aws:iam::123456789012:role/has space", "contains ' '"),
            ("arn:aws:iam::123456789012:role/a:b", "contains ':'"),
            ("arn:aws:iam::123456789012:role/a//b", "malformed"),
            ("arn:aws:iam::123456789012:role/é/b", "malformed"),
        ];
        for (arn, want) in cases {
            match RoleArn::parse(arn) {
                Ok(v) => panic!("{arn:?} parsed as {v:?}"),
                Err(e) => assert!(e.contains(want), "{arn:?}: {e:?} lacks {want:?}"),
            }
        }
        let long = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(65));
        assert!(RoleArn::parse(&long).is_err_and(|e| e.contains("65 characters")));
        let ok = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(64));
        assert!(RoleArn::parse(&ok).is_ok());
    }
}
