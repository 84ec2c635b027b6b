"""Fixtures of the remote tests: one moto S3 server per session, a fresh bucket per test.

The server is reached only through s3fs's ordinary configuration: ``AWS_ENDPOINT_URL`` and dummy
credentials in the environment (set for the whole session, restored at its end).
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from s3server import CuttableProxy, MotoServer, s3_environ  # noqa: E402


@pytest.fixture(scope="session")
def moto_server():
    try:  # in the test extras: missing means a broken environment, not a skip
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the remote tests need moto[server] and s3fs: pip install -e '.[test]' "
                    f"({exc})")
    server = MotoServer().start()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(s3_environ(server.endpoint))
    try:
        yield server
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.fixture
def boto(moto_server):
    import boto3

    return boto3.client("s3")


@pytest.fixture
def bucket(boto):
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3fs_fs(moto_server):
    """A private S3FileSystem (no instance cache) on the server, configured by the environment."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True,
                             config_kwargs={"retries": {"total_max_attempts": 2, "mode": "standard"},
                                            "connect_timeout": 2, "read_timeout": 10})


@pytest.fixture
def proxy(moto_server):
    p = CuttableProxy(moto_server.port)
    yield p
    p.close()


@pytest.fixture
def proxied_fs(proxy):
    """An S3FileSystem that talks to the server through ``proxy`` (which can be cut)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=proxy.endpoint,
                             config_kwargs={"retries": {"total_max_attempts": 2, "mode": "standard"},
                                            "connect_timeout": 2, "read_timeout": 5})
