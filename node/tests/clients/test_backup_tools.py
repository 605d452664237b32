"""A real backup tool against a versioned, object-locked bucket: rclone (Debian's package)
keeps every state of a backup, restores the state of a past moment, and cannot remove a
locked version."""

import datetime
import os
import shutil
import subprocess
import time

import pytest

from conftest import ACCESS_KEY, SECRET_KEY


@pytest.fixture
def rclone(node, tmp_path):
    binary = shutil.which("rclone")
    if binary is None:
        pytest.fail("rclone is not installed (scripts/test.sh installs it from Debian's packages)")
    # The machine's AWS_* settings (a CA bundle for the real AWS) are not for this endpoint.
    env = dict(
        {name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
        RCLONE_CONFIG=str(tmp_path / "no-rclone.conf"),
        RCLONE_CONFIG_BK_TYPE="s3",
        RCLONE_CONFIG_BK_PROVIDER="Other",
        RCLONE_CONFIG_BK_ENDPOINT=node.endpoint,
        RCLONE_CONFIG_BK_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_BK_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_BK_REGION="us-east-1",
    )

    def run(*args, check=True):
        result = subprocess.run(
            [binary, "--retries", "1", "--low-level-retries", "1", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, f"rclone {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    return run


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def tree(root):
    return {
        str(path.relative_to(root)): path.read_text() for path in sorted(root.rglob("*")) if path.is_file()
    }


def test_rclone_versions_in_a_locked_bucket(s3, rclone, tmp_path):
    s3.create_bucket(Bucket="backups", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="backups",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    source = tmp_path / "source"
    write(source / "a.txt", "a, first state")
    write(source / "dir" / "b.txt", "b, only in the first state")
    rclone("sync", str(source), "bk:backups/set")
    first_state = tree(source)

    # A second backup changes a.txt, removes b.txt, adds c.txt.
    time.sleep(1.5)
    between = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.5)
    write(source / "a.txt", "a, second state")
    (source / "dir" / "b.txt").unlink()
    write(source / "c.txt", "c, new")
    rclone("sync", str(source), "bk:backups/set")

    current = rclone("lsf", "-R", "--files-only", "bk:backups/set").stdout.split()
    assert sorted(current) == ["a.txt", "c.txt"]
    # With --s3-versions the older states are listed too (a-v<time>.txt, b-v<time>.txt).
    with_versions = rclone("lsf", "-R", "--files-only", "--s3-versions", "bk:backups/set").stdout.split()
    assert len(with_versions) == 4, with_versions
    assert any(name.startswith("a-v") for name in with_versions)
    assert any(name.startswith("dir/b-v") for name in with_versions)

    # Restore the backup as it was between the two runs.
    restored = tmp_path / "restored"
    at = between.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rclone("copy", "--s3-version-at", at, "bk:backups/set", str(restored))
    assert tree(restored) == first_state

    # The lock holds: removing old versions fails, and every version is still there.
    def versions():
        listed = s3.list_object_versions(Bucket="backups", Prefix="set/")
        return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))

    before = versions()
    assert len(before) == 4
    removed = rclone("delete", "--s3-versions", "bk:backups/set", check=False)
    assert removed.returncode != 0, removed.stdout + removed.stderr
    assert versions() == before
    restored_again = tmp_path / "restored-again"
    rclone("copy", "--s3-version-at", at, "bk:backups/set", str(restored_again))
    assert tree(restored_again) == first_state
