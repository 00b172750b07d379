//! Property tests: the spec parser and validator never panic on any input
//! and locate every problem under a provider or environment; the catalog
//! merge is idempotent and keeps every foreign document byte for byte.

use harmonix_core::catalog::{self, Entity};
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::spec::{self, SpecError};
use harmonix_tests::repo_root;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    }
}

/// Validation problems must sit under a provider, an environment, a
/// top-level field, or be about the whole file.
fn paths_are_located(e: &SpecError) -> Result<(), String> {
    if let Some(list) = e.validation_errors() {
        for v in list {
            let ok = v.path.is_empty()
                || v.path.starts_with("providers")
                || v.path.starts_with("environments")
                || v.path.starts_with("apiVersion")
                || !v.path.contains('.');
            if !ok {
                return Err(format!("unlocated problem {v:?}"));
            }
            if v.message.is_empty() {
                return Err(format!("empty message at {}", v.path));
            }
        }
    }
    Ok(())
}

/// A YAML scalar from a hostile alphabet.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,20}",
        "[0-9]{0,14}",
        "arn:aws:iam::[0-9]{12}:role/[a-z-]{1,30}",
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}",
        "\\PC{0,12}",
        Just(String::new()),
        Just("~".to_owned()),
        Just("*x".to_owned()),
        Just("&a".to_owned()),
    ]
}

const FIELDS: [&str; 16] = [
    "kind",
    "name",
    "prefix",
    "description",
    "owner",
    "account",
    "region",
    "environmentRole",
    "platformRole",
    "pipelineRole",
    "logRetentionDays",
    "awsAccountID",
    "vpc_configuration",
    "cidr",
    "vpc_id",
    "colour",
];

/// A provider mapping with random fields and values, as YAML text.
fn provider_yaml() -> impl Strategy<Value = String> {
    proptest::collection::vec((proptest::sample::select(&FIELDS[..]), scalar()), 0..12).prop_map(
        |pairs| {
            let mut s = String::from("  - kind: ecs\n");
            for (k, v) in pairs {
                // Quoted: the values are the data under test, not YAML syntax.
                s.push_str(&format!(
                    "    {k}: {}\n",
                    serde_json::to_string(&v).unwrap_or_default()
                ));
            }
            s
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let r = std::panic::catch_unwind(|| spec::parse_bytes(&bytes, "prop"));
        prop_assert!(r.is_ok(), "panicked");
    }

    #[test]
    fn parser_never_panics_on_yamlish_text(text in "[ \\-:\\[\\]{}&*!|>'\"#%@`a-z0-9\\n]{0,400}") {
        let r = std::panic::catch_unwind(|| spec::parse_str(&text, "prop"));
        prop_assert!(r.is_ok(), "panicked");
    }

    #[test]
    fn validator_never_panics_and_locates_problems(providers in proptest::collection::vec(provider_yaml(), 0..4)) {
        let text = format!("providers:\n{}", providers.concat());
        let registry = Registry::builtin();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spec::parse_str(&text, "prop").and_then(|f| spec::validate(f, &registry, "prop"))
        }));
        let r = result.map_err(|_| TestCaseError::fail(format!("panicked on\n{text}")))?;
        if let Err(e) = r {
            paths_are_located(&e).map_err(TestCaseError::fail)?;
        }
    }
}

fn our_entities() -> Vec<Entity> {
    let registry = Registry::builtin();
    let valid =
        spec::load(&repo_root().join("examples/specs/multi.yaml"), &registry).expect("example");
    catalog::entities(&valid, &registry, &StackOutputs::new()).expect("entities")
}

/// A foreign catalog document (kept byte for byte by the merge).
fn foreign_doc() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,20}",
        prop_oneof![
            Just("Component"),
            Just("API"),
            Just("Resource"),
            Just("System")
        ],
        proptest::option::of("[a-zA-Z0-9 ,.]{0,40}"),
        proptest::option::of("[a-z]{1,10}"),
        any::<bool>(),
    )
        .prop_map(|(name, kind, description, comment, quoted)| {
            let mut s = String::new();
            if let Some(c) = comment {
                s.push_str(&format!("# {c}\n"));
            }
            s.push_str(&format!(
                "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n"
            ));
            if quoted {
                s.push_str(&format!("  name: \"{name}\"\n"));
            } else {
                s.push_str(&format!("  name: {name}\n"));
            }
            if let Some(d) = description {
                s.push_str(&format!("  description: '{d}'\n"));
            }
            s.push_str("spec:\n  type: service\n  owner: group:web\n");
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_idempotent_and_keeps_foreign_documents(
        docs in proptest::collection::vec(foreign_doc(), 0..8),
        with_ours in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let ours = our_entities();
        let mut existing = docs.join("---\n");
        if with_ours {
            // An older version of our entities, with a foreign field.
            let old = catalog::merge("", &ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
            existing = format!("{existing}{}", old.replace("  prefix:", "  team-note: keep me\n  prefix:"));
        }
        if crlf {
            existing = existing.replace('\n', "\r\n");
        }
        let once = catalog::merge(&existing, &ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let twice = catalog::merge(&once, &ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&once, &twice, "merge is not idempotent");
        for d in &docs {
            let d = if crlf { d.replace('\n', "\r\n") } else { d.clone() };
            prop_assert!(once.contains(&d), "foreign document lost or changed:\n{}\n---in---\n{}", d, once);
        }
        if with_ours {
            prop_assert!(once.contains("team-note: keep me"), "foreign field of our document lost");
        }
        for e in &ours {
            let name_line = format!("name: {}", e.name());
            prop_assert!(once.contains(&name_line), "entity {} missing", e.name());
        }
    }
}
