//! The AWS region codes a spec may name.

/// Every region Harmonix accepts: the commercial regions (as of 2026), the
/// China regions and AWS GovCloud (US).
pub(crate) const REGIONS: &[&str] = &[
    // North America
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "mx-central-1",
    // South America
    "sa-east-1",
    // Africa
    "af-south-1",
    // Asia Pacific
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    // Europe
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    // Middle East
    "il-central-1",
    "me-south-1",
    "me-central-1",
    // China (partition aws-cn)
    "cn-north-1",
    "cn-northwest-1",
    // AWS GovCloud (US) (partition aws-us-gov)
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Whether `region` is a known region code.
pub(crate) fn is_known(region: &str) -> bool {
    REGIONS.contains(&region)
}

/// Known regions close to an unknown `region`: the lowercase spelling, the
/// regions sharing its stem (`us-east-9` → `us-east-1`, `us-east-2`), or one
/// within two edits (`us-esat-1` → `us-east-1`).
pub(crate) fn suggestions(region: &str) -> Vec<&'static str> {
    let lower = region.trim().to_ascii_lowercase();
    if let Some(r) = REGIONS.iter().find(|r| **r == lower) {
        return vec![r];
    }
    let stem = |s: &str| s.rsplit_once('-').map(|(stem, _)| stem.to_owned());
    if let Some(wanted) = stem(&lower).filter(|s| !s.is_empty()) {
        let same: Vec<&str> = REGIONS
            .iter()
            .copied()
            .filter(|r| stem(r).as_deref() == Some(wanted.as_str()))
            .collect();
        if !same.is_empty() {
            return same;
        }
    }
    let best = REGIONS
        .iter()
        .map(|r| (edit_distance(&lower, r), *r))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, r)) if d <= 2 => vec![r],
        _ => Vec::new(),
    }
}

/// Levenshtein distance on chars; inputs here are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX) + usize::from(ca != *cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::common::partition;

    #[test]
    fn list_is_sane() {
        let mut seen = std::collections::BTreeSet::new();
        for r in REGIONS {
            assert!(seen.insert(*r), "{r} listed twice");
            let parts: Vec<&str> = r.split('-').collect();
            assert!(parts.len() >= 3, "{r}");
            assert!(parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }));
        }
        for r in [
            "us-east-1",
            "us-west-2",
            "ap-east-2",
            "ap-southeast-7",
            "ca-west-1",
            "mx-central-1",
            "il-central-1",
            "eu-central-2",
            "cn-northwest-1",
            "us-gov-west-1",
        ] {
            assert!(is_known(r), "{r}");
        }
        for r in [
            "us-east-9",
            "US-EAST-1",
            "",
            "us-east",
            "eu-west-4",
            "local",
        ] {
            assert!(!is_known(r), "{r}");
        }
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-east-1"), "aws-us-gov");
        assert_eq!(
            REGIONS.iter().filter(|r| partition(r) == "aws").count(),
            REGIONS.len() - 4
        );
    }

    #[test]
    fn suggests_close_regions() {
        assert_eq!(suggestions("us-east-9"), ["us-east-1", "us-east-2"]);
        assert_eq!(suggestions("US-EAST-1"), ["us-east-1"]);
        assert_eq!(
            suggestions("eu-west-7"),
            ["eu-west-1", "eu-west-2", "eu-west-3"]
        );
        assert_eq!(suggestions("us-esat-1"), ["us-east-1"]);
        assert_eq!(suggestions("useast1"), ["us-east-1"]);
        assert!(suggestions("mars-north-1").is_empty());
        assert!(suggestions("").is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
