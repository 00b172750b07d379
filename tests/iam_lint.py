"""Lint IAM policy documents with parliament (tests/security.rs runs this).

Reads a JSON array of {"id": ..., "policy": {...}} from stdin; the policies
must already be plain JSON (CloudFormation intrinsics resolved by the
caller). Prints a JSON array of findings, one object per finding:
{"id", "statement" (index, or null for the policy as a whole), "sid",
"issue", "severity", "title", "detail"}.

parliament ships the IAM Service Authorization Reference data in the
package (iam_definition.json), so this runs offline.
"""

import json
import sys

import parliament


def plain(value):
    """A finding's detail as JSON (parliament keeps some as parser nodes)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def finding(doc_id, index, sid, f):
    f = parliament.enhance_finding(f)
    return {
        "id": doc_id,
        "statement": index,
        "sid": sid,
        "issue": f.issue,
        "severity": f.severity,
        "title": f.title,
        "detail": plain(f.detail),
    }


def main():
    out = []
    for doc in json.load(sys.stdin):
        policy = parliament.analyze_policy_string(
            json.dumps(doc["policy"]), filepath=doc["id"]
        )
        out.extend(finding(doc["id"], None, None, f) for f in policy._findings)
        for index, stmt in enumerate(policy.statements):
            out.extend(finding(doc["id"], index, stmt.sid, f) for f in stmt.findings)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
