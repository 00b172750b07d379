"""Specs, validation, rendering and the schema: no AWS needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harmonix
from conftest import EXAMPLES, example_text


def test_examples_load_and_validate() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert harmonix.validate(path) == [], path
        specs = harmonix.load(path)
        assert len(specs) == 1
        assert specs.origins == [str(path)]


def test_validation_errors_carry_paths_values_and_messages() -> None:
    text = example_text("ecs.yaml").replace("cidr: 10.0.0.0/24", "cidr: 10.0.0.0/8").replace(
        "region: us-east-1", "region: us-east-9"
    )
    issues = harmonix.validate(text)
    paths = {i.path: i for i in issues}
    assert set(paths) == {"providers[0].vpc.cidr", "providers[0].region"}
    assert paths["providers[0].vpc.cidr"].value == "10.0.0.0/8"
    assert "/16" in paths["providers[0].vpc.cidr"].message
    assert "us-east-1" in paths["providers[0].region"].message

    with pytest.raises(harmonix.ValidationError) as info:
        harmonix.loads(text, origin="bad.yaml")
    e = info.value
    assert isinstance(e, harmonix.HarmonixError)
    assert e.code == "HARMONIX_VALIDATION"
    assert e.origin == "bad.yaml"
    assert sorted(p for p, _, _ in e.errors) == ["providers[0].region", "providers[0].vpc.cidr"]
    assert "providers[0].vpc.cidr" in str(e)


def test_from_dict_and_unknown_fields() -> None:
    data = {
        "providers": [
            {
                "kind": "serverless",
                "name": "orders-dev",
                "owner": "group:orders",
                "account": "123456789012",
                "region": "us-east-1",
                "environmentRole": "arn:aws:iam::123456789012:role/opa-envprovisioning-role",
                "platformRole": "arn:aws:iam::111111111111:role/opa-platform-role",
                "pipelineRole": "arn:aws:iam::111111111111:role/opa-pipeline-role",
            }
        ]
    }
    specs = harmonix.from_dict(data)
    assert [s.name for s in specs.stacks()] == ["opa-orders-dev-environment"]
    data["providers"][0]["colour"] = "blue"  # type: ignore[index]
    issues = harmonix.validate(data)
    assert [i.path for i in issues] == ["providers[0].colour"]
    with pytest.raises(harmonix.ValidationError) as info:
        harmonix.from_dict(data)
    assert info.value.errors[0][0] == "providers[0].colour"


def test_hostile_yaml_is_an_error_not_a_crash() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")
    )
    issues = harmonix.validate(bomb)
    assert issues and issues[0].path == ""
    with pytest.raises(harmonix.ValidationError):
        harmonix.loads(bomb)
    with pytest.raises(harmonix.ValidationError):
        harmonix.loads("providers: [")


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(harmonix.FileError) as info:
        harmonix.load(tmp_path / "nope.yaml")
    assert info.value.code == "HARMONIX_IO"
    assert issubclass(harmonix.FileError, harmonix.HarmonixError)


def test_render_is_deterministic(tmp_path: Path) -> None:
    specs = harmonix.load(EXAMPLES / "multi.yaml")
    a = specs.render(tmp_path / "a")
    b = harmonix.render(specs, tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b]
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(manifest) == 3
    stacks = specs.stacks()
    assert stacks[0].template["Resources"]["Vpc"]["Type"] == "AWS::EC2::VPC"
    assert stacks[0].hash and stacks[0].capabilities == ("CAPABILITY_NAMED_IAM",)


def test_specs_combine_and_entities() -> None:
    both = harmonix.load(EXAMPLES / "ecs.yaml") + harmonix.loads(example_text("serverless.yaml"))
    assert len(both) == 2
    kinds = [e["kind"] for e in both.entities()]
    assert kinds == ["AWSEnvironmentProvider", "AWSEnvironmentProvider"]


def test_schema() -> None:
    s = harmonix.schema()
    assert "providers" in s["properties"]


def test_engine_options_are_checked() -> None:
    with pytest.raises(harmonix.InvalidInputError) as info:
        harmonix.Engine(api_rate=0.0)
    assert "api_budget.rate" in str(info.value)
    with pytest.raises(harmonix.InvalidInputError):
        harmonix.Engine(endpoint_url="ftp://example")
    with pytest.raises(harmonix.InvalidInputError) as info:
        harmonix.Engine(external_id="SEKRIT!")
    assert "SEKRIT" not in str(info.value) and "redacted" in str(info.value)
