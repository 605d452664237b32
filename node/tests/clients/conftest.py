"""Starts a real buckets-node process on temporary drives for the client tests."""

import os
import socket
import subprocess
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "clientadmin"
SECRET_KEY = "clientadmin-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, root, drives=4):
        self.root = root
        self.s3_port = free_port()
        self.admin_port = free_port()
        binary = os.environ.get("BUCKETS_NODE_BIN")
        if not binary:
            raise RuntimeError("set BUCKETS_NODE_BIN to the buckets-node binary (.ci/run does)")
        env = dict(os.environ, BUCKETS_ROOT_USER=ACCESS_KEY, BUCKETS_ROOT_PASSWORD=SECRET_KEY, BUCKETS_LOG="warn")
        self.log = open(os.path.join(root, "node.log"), "wb")
        self.process = subprocess.Popen(
            [
                binary,
                "server",
                "--address",
                f"127.0.0.1:{self.s3_port}",
                "--admin-address",
                f"127.0.0.1:{self.admin_port}",
                f"{root}/d{{1...{drives}}}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("buckets-node exited: " + open(os.path.join(root, "node.log")).read())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("buckets-node did not become ready")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


@pytest.fixture
def node(tmp_path):
    n = Node(str(tmp_path))
    yield n
    n.stop()


def client(node, **config):
    return boto3.client(
        "s3",
        endpoint_url=node.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        # No retries and a short read timeout: a stalled connection fails the test.
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, read_timeout=15, **config),
    )


@pytest.fixture
def s3(node):
    return client(node)


@pytest.fixture
def v4(node):
    """A client that presigns with SigV4 (boto3 presigns with SigV2 by default)."""
    return client(node, signature_version="s3v4")


@pytest.fixture
def aws(node, tmp_path):
    """Runs the AWS CLI against the node; returns its stdout, raises on failure."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )

    def run(*args):
        result = subprocess.run(
            ["aws", "--endpoint-url", node.endpoint, *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"aws {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    return run
