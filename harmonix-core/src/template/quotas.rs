//! CloudFormation's documented template and stack quotas, checked before
//! any AWS call, so a spec that would be refused hears about it at
//! `validate` / `render` / `plan` time with the stack and the number.
//!
//! Source: "Understand CloudFormation quotas",
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>
//! (template body 51,200 bytes in a request, 1 MB from S3; 500 resources,
//! 200 parameters, 200 outputs, 200 mappings; names 255 characters;
//! description 1,024 bytes; parameter values 4,096 bytes), and the template
//! anatomy page for logical ids ("The logical ID must be alphanumeric
//! (A-Za-z0-9) and unique within the template"),
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resources-section-structure.html>.
//! Stack tags: at most 50 per stack, keys up to 128 and values up to 256
//! characters (`Tag` in the CloudFormation API reference,
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Tag.html>;
//! `CreateChangeSet` `Tags`: "You can specify a maximum of 50 tags").

use super::Template;

/// Largest `TemplateBody` CloudFormation accepts inline in a
/// `CreateStack`, `UpdateStack`, `CreateChangeSet` or `ValidateTemplate`
/// request. Bigger templates go through S3 (`TemplateURL`).
pub const MAX_INLINE_BODY_BYTES: usize = 51_200;

/// Largest template CloudFormation reads from S3 ("1 MB"; taken as
/// 1,000,000 bytes, the smaller reading).
pub const MAX_S3_BODY_BYTES: usize = 1_000_000;

/// Resources per template.
pub const MAX_RESOURCES: usize = 500;
/// Parameters per template.
pub const MAX_PARAMETERS: usize = 200;
/// Outputs per template.
pub const MAX_OUTPUTS: usize = 200;
/// Conditions have no separate quota; names follow the 255-character rule.
pub const MAX_NAME_CHARS: usize = 255;
/// Template description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1_024;
/// One parameter value, in bytes.
pub const MAX_PARAMETER_VALUE_BYTES: usize = 4_096;
/// Tags per stack.
pub const MAX_STACK_TAGS: usize = 50;
/// Stack tag key length.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Stack tag value length.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// One quota a template or stack exceeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaProblem {
    /// What is over (`resources`, `Resources.My-Id`, `description`, …).
    pub what: String,
    /// The value found (a count, a size or the offending name).
    pub found: String,
    /// What CloudFormation allows.
    pub allowed: String,
}

impl std::fmt::Display for QuotaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is {}; {}", self.what, self.found, self.allowed)
    }
}

fn is_logical_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NAME_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Template {
    /// Every documented CloudFormation template quota this template
    /// exceeds (see the module docs), its compact size included: empty
    /// for a template CloudFormation accepts (from S3 when over
    /// [`MAX_INLINE_BODY_BYTES`]).
    pub fn quota_problems(&self) -> Vec<QuotaProblem> {
        let mut out = Vec::new();
        let mut count = |what: &str, n: usize, max: usize| {
            if n > max {
                out.push(QuotaProblem {
                    what: what.to_owned(),
                    found: n.to_string(),
                    allowed: format!("CloudFormation allows at most {max} per template"),
                });
            }
        };
        count(
            "the number of resources",
            self.resources.len(),
            MAX_RESOURCES,
        );
        count(
            "the number of parameters",
            self.parameters.len(),
            MAX_PARAMETERS,
        );
        count("the number of outputs", self.outputs.len(), MAX_OUTPUTS);
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            out.push(QuotaProblem {
                what: "the template description".into(),
                found: format!("{} bytes", self.description.len()),
                allowed: format!("CloudFormation allows at most {MAX_DESCRIPTION_BYTES} bytes"),
            });
        }
        let sections = [
            ("Resources", self.resources.keys().collect::<Vec<_>>()),
            ("Parameters", self.parameters.keys().collect()),
            ("Outputs", self.outputs.keys().collect()),
            ("Conditions", self.conditions.keys().collect()),
        ];
        for (section, ids) in sections {
            for id in ids.into_iter().filter(|id| !is_logical_id(id)) {
                out.push(QuotaProblem {
                    what: format!("the logical id {section}.{id}"),
                    found: format!("`{id}` ({} characters)", id.chars().count()),
                    allowed: format!(
                        "logical ids are 1 to {MAX_NAME_CHARS} alphanumeric characters (A-Za-z0-9)"
                    ),
                });
            }
        }
        for (name, p) in &self.parameters {
            if let Some(d) = p.default.as_ref().and_then(|v| v.as_str())
                && d.len() > MAX_PARAMETER_VALUE_BYTES
            {
                out.push(QuotaProblem {
                    what: format!("the default of parameter {name}"),
                    found: format!("{} bytes", d.len()),
                    allowed: format!(
                        "CloudFormation allows at most {MAX_PARAMETER_VALUE_BYTES} bytes"
                    ),
                });
            }
        }
        let size = self.compact_len();
        if size > MAX_S3_BODY_BYTES {
            out.push(QuotaProblem {
                what: "the template (compact JSON)".into(),
                found: format!("{size} bytes"),
                allowed: format!(
                    "CloudFormation reads templates of at most {MAX_S3_BODY_BYTES} bytes from S3 \
                     ({MAX_INLINE_BODY_BYTES} inline); split the environment into more providers"
                ),
            });
        }
        out
    }

    /// Size in bytes of [`Template::to_compact_json`], without building
    /// the string.
    pub fn compact_len(&self) -> usize {
        let mut n = CountingWriter(0);
        self.write_compact_json(&mut n);
        n.0
    }
}

/// Quotas of a stack beyond its template: parameter values and tags.
pub fn stack_problems<'a>(
    parameters: impl IntoIterator<Item = (&'a String, &'a String)>,
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<QuotaProblem> {
    let mut out = Vec::new();
    for (k, v) in parameters {
        if v.len() > MAX_PARAMETER_VALUE_BYTES {
            out.push(QuotaProblem {
                what: format!("the value of parameter {k}"),
                found: format!("{} bytes", v.len()),
                allowed: format!("CloudFormation allows at most {MAX_PARAMETER_VALUE_BYTES} bytes"),
            });
        }
    }
    let mut n = 0;
    for (k, v) in tags {
        n += 1;
        if k.chars().count() > MAX_TAG_KEY_CHARS {
            out.push(QuotaProblem {
                what: format!("the stack tag key `{k}`"),
                found: format!("{} characters", k.chars().count()),
                allowed: format!("tag keys are at most {MAX_TAG_KEY_CHARS} characters"),
            });
        }
        if v.chars().count() > MAX_TAG_VALUE_CHARS {
            out.push(QuotaProblem {
                what: format!("the value of stack tag `{k}`"),
                found: format!("{} characters", v.chars().count()),
                allowed: format!("tag values are at most {MAX_TAG_VALUE_CHARS} characters"),
            });
        }
    }
    // The engine adds its hash tag to every stack.
    if n + 1 > MAX_STACK_TAGS {
        out.push(QuotaProblem {
            what: "the number of stack tags (with Harmonix's hash tag)".into(),
            found: (n + 1).to_string(),
            allowed: format!("CloudFormation allows at most {MAX_STACK_TAGS} tags per stack"),
        });
    }
    out
}

/// An `io::Write` that only counts bytes.
struct CountingWriter(usize);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::{Output, Parameter, Resource};

    #[test]
    fn a_small_template_has_no_problems() {
        let mut t = Template::new("ok");
        t.resource("Topic", Resource::new("AWS::SNS::Topic"));
        assert!(t.quota_problems().is_empty());
        assert_eq!(t.compact_len(), t.to_compact_json().len());
    }

    #[test]
    fn counts_names_description_and_size_are_checked() {
        let mut t = Template::new("d".repeat(MAX_DESCRIPTION_BYTES + 1));
        for i in 0..=MAX_RESOURCES {
            t.resource(format!("R{i}"), Resource::new("AWS::SNS::Topic"));
        }
        for i in 0..=MAX_PARAMETERS {
            t.parameter(format!("P{i}"), Parameter::string("p"));
        }
        for i in 0..=MAX_OUTPUTS {
            t.output(format!("O{i}"), Output::new(json!("x")));
        }
        t.resource("Bad-Id", Resource::new("AWS::SNS::Topic"));
        t.resource("A".repeat(256), Resource::new("AWS::SNS::Topic"));
        t.resource(
            "Big",
            Resource::new("AWS::SNS::Topic").property("DisplayName", "x".repeat(MAX_S3_BODY_BYTES)),
        );
        let problems = t.quota_problems();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for needle in [
            "number of resources is 504",
            "number of parameters is 201",
            "number of outputs is 201",
            "description is 1025 bytes",
            "Resources.Bad-Id",
            "(256 characters)",
            "the template (compact JSON) is",
        ] {
            assert!(
                text.iter().any(|p| p.contains(needle)),
                "{needle}: {text:#?}"
            );
        }
    }

    #[test]
    fn stack_tags_and_parameter_values_are_checked() {
        let params = [("Big".to_owned(), "v".repeat(MAX_PARAMETER_VALUE_BYTES + 1))];
        let mut tags: Vec<(String, String)> = (0..MAX_STACK_TAGS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        tags.push(("k".repeat(129), "v".repeat(257)));
        let problems = stack_problems(
            params.iter().map(|(k, v)| (k, v)),
            tags.iter().map(|(k, v)| (k, v)),
        );
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{text:#?}");
        assert!(text[0].contains("parameter Big"), "{text:#?}");
        assert!(text[3].contains("52"), "{text:#?}");
        // 49 tags + the hash tag is exactly the limit.
        let ok: Vec<(String, String)> = (0..MAX_STACK_TAGS - 1)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(stack_problems([], ok.iter().map(|(k, v)| (k, v))).is_empty());
    }
}
