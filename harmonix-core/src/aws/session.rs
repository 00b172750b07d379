//! Role session names.

use sha2::{Digest, Sha256};

use super::options::is_sts_char;

/// Longest role session name STS accepts.
pub const MAX_SESSION_NAME_LEN: usize = 64;

/// The role session name for `caller` deploying `environment`:
/// `harmonix-<caller>-<environment>`.
///
/// Every character outside `[A-Za-z0-9_+=,.@-]` (what STS accepts) becomes
/// `-`. A name longer than 64 characters is cut to 55 characters followed by
/// `-` and the first 8 hex digits of the SHA-256 of the untruncated,
/// unsanitized name, so long names stay distinct and stable.
///
/// ```
/// use harmonix_core::aws::session_name;
/// assert_eq!(session_name("jane.doe", "payments dev"), "harmonix-jane.doe-payments-dev");
/// assert!(session_name("ci", &"x".repeat(100)).len() == 64);
/// ```
pub fn session_name(caller: &str, environment: &str) -> String {
    let raw = format!("harmonix-{caller}-{environment}");
    let clean: String = raw
        .chars()
        .map(|c| if is_sts_char(c) { c } else { '-' })
        .collect();
    if clean.len() <= MAX_SESSION_NAME_LEN {
        return clean;
    }
    let digest = Sha256::digest(raw.as_bytes());
    let suffix: String = digest.iter().take(4).fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    // `clean` is ASCII only, so byte slicing is on char boundaries.
    let keep = MAX_SESSION_NAME_LEN - suffix.len() - 1;
    let head = clean.get(..keep).unwrap_or(&clean);
    format!("{head}-{suffix}")
}
