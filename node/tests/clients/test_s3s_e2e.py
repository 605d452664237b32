"""s3s-e2e, the S3 test suite of the s3s project (a third-party suite built from its crate,
written against the AWS SDK for Rust), run against a real node. Every case must pass
except the features Buckets does not have yet, listed below with why; a case that starts
passing or failing changes the set and fails this test."""

import json
import os
import subprocess

import pytest

from conftest import ACCESS_KEY, SECRET_KEY

# Cases Buckets does not pass, with why (none today).
NOT_SUPPORTED: dict[str, str] = {}


def cases(report):
    for suite in report["suites"]:
        for fixture in suite["fixtures"]:
            for case in fixture["cases"]:
                yield f"{suite['name']}/{fixture['name']}/{case['name']}", case["passed"]


def run_version(binary):
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0].split()[-1]


def test_s3s_e2e_suite(node, tmp_path):
    binary = os.environ.get("BUCKETS_S3S_E2E")
    if not binary:
        pytest.fail("set BUCKETS_S3S_E2E to the s3s-e2e binary (.ci/run builds it)")
    report_path = tmp_path / "s3s-e2e.json"
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=node.endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        RUST_LOG="off",
    )
    run = subprocess.run([binary, "--json", str(report_path)], env=env, capture_output=True, text=True, timeout=300)
    assert report_path.exists(), f"s3s-e2e wrote no report:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = dict(cases(json.loads(report_path.read_text())))
    failed = {name for name, passed in results.items() if not passed}
    passed = len(results) - len(failed)
    summary = f"s3s-e2e {run_version(binary)}: {passed} of {len(results)} cases pass; failing: {sorted(failed)}"
    print(summary)
    if os.environ.get("BUCKETS_S3S_E2E_SUMMARY"):
        with open(os.environ["BUCKETS_S3S_E2E_SUMMARY"], "w") as f:
            f.write(summary + "\n")
    assert len(results) >= 17, f"the suite ran only {len(results)} cases"
    assert failed == set(NOT_SUPPORTED), (
        f"newly failing: {sorted(failed - set(NOT_SUPPORTED))}, newly passing: {sorted(set(NOT_SUPPORTED) - failed)}\n"
        + run.stdout[-8000:]
    )
