import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from tests.faults import FaultKind, S3FaultProxy

# botocore reads retries["max_attempts"] as retries after the first try (1 = two requests); the total is this key.
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def proxy(s3_server):
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def client_via(proxy, s3_server, config=None):
    env = s3_server.env()
    return boto3.client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
        config=config,
    )


@pytest.fixture
def bucket(proxy, s3_server):
    """A fresh bucket (created through the proxy, counters reset afterwards); removed after the test."""
    name = f"proxy-{uuid.uuid4().hex[:16]}"
    s3 = client_via(proxy, s3_server)
    s3.create_bucket(Bucket=name)
    proxy.reset_counters()
    yield name
    proxy.clear_faults()
    s3.delete_bucket(Bucket=name)


def test_requests_pass_through_unchanged(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    body = bytes(range(256)) * 1024  # binary, 256 KiB: streamed both ways
    s3.put_object(Bucket=bucket, Key="dir/ü space.bin", Body=body, ContentType="application/x-test")
    got = s3.get_object(Bucket=bucket, Key="dir/ü space.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert s3.head_object(Bucket=bucket, Key="dir/ü space.bin")["ContentLength"] == len(body)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/ü space.bin"]
    counts = proxy.counts()
    assert (counts.seen, counts.forwarded, counts.faults) == (4, 4, 0)
    assert [r.method for r in proxy.requests()] == ["PUT", "GET", "HEAD", "GET"]


def test_injected_slow_down_surfaces_as_client_error_without_retries(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x,y\n1,2\n")
    proxy.slow_down(method="GET", path="a.csv")
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="a.csv")
    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket=bucket, Key="a.csv")["Body"].read() == b"x,y\n1,2\n"  # the plan is used up
    assert proxy.counts().injected == {FaultKind.SLOW_DOWN: 1}


def test_max_attempts_one_means_one_retry_in_botocore(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, Config(retries={"max_attempts": 1, "mode": "standard"}))
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")
    proxy.slow_down(times=2, method="GET")
    with pytest.raises(ClientError, match="SlowDown"):
        s3.get_object(Bucket=bucket, Key="a.csv")
    assert [r.fault for r in proxy.requests() if r.method == "GET"] == [FaultKind.SLOW_DOWN] * 2


def test_injected_internal_error_on_head_has_no_body_and_surfaces_as_500(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")
    proxy.internal_error(method="HEAD")
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=bucket, Key="a.csv")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    proxy.internal_error(method="GET")
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="a.csv")
    assert raised.value.response["Error"]["Code"] == "InternalError"
    # The keep-alive connection is still in step after the faults: the next request works.
    assert s3.head_object(Bucket=bucket, Key="a.csv")["ContentLength"] == 4


def test_default_retries_get_through_injected_slow_downs(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server)  # botocore's default retry configuration
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")
    proxy.slow_down(times=2, method="GET")
    assert s3.get_object(Bucket=bucket, Key="a.csv")["Body"].read() == b"x\n1\n"
    gets = [r.fault for r in proxy.requests() if r.method == "GET"]
    assert gets == [FaultKind.SLOW_DOWN, FaultKind.SLOW_DOWN, None]
    assert proxy.pending_faults() == 0


def test_reset_connection_surfaces_as_connection_error(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    proxy.reset_connection(method="PUT")
    with pytest.raises(ConnectionClosedError):
        s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=bucket, Key="a.csv")  # the reset request never reached S3
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    counts = proxy.counts()
    assert (counts.seen, counts.forwarded, dict(counts.injected)) == (2, 1, {FaultKind.RESET: 1})


def test_faults_only_hit_requests_matching_method_and_path(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    proxy.slow_down(times=2, method="GET", path="target.csv")
    s3.put_object(Bucket=bucket, Key="target.csv", Body=b"x\n1\n")
    s3.put_object(Bucket=bucket, Key="other.csv", Body=b"x\n2\n")
    assert s3.get_object(Bucket=bucket, Key="other.csv")["Body"].read() == b"x\n2\n"
    for _ in range(2):
        with pytest.raises(ClientError, match="SlowDown"):
            s3.get_object(Bucket=bucket, Key="target.csv")
    assert s3.get_object(Bucket=bucket, Key="target.csv")["Body"].read() == b"x\n1\n"
    counts = proxy.counts()
    assert (counts.seen, counts.forwarded, counts.faults) == (6, 4, 2)
    assert [(r.method, r.fault) for r in proxy.requests() if "target.csv" in r.target] == [
        ("PUT", None),
        ("GET", FaultKind.SLOW_DOWN),
        ("GET", FaultKind.SLOW_DOWN),
        ("GET", None),
    ]


def test_path_filter_matches_percent_decoded_keys(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    s3.put_object(Bucket=bucket, Key="ü space.csv", Body=b"x\n1\n")
    proxy.internal_error(path="ü space.csv")
    with pytest.raises(ClientError, match="InternalError"):
        s3.get_object(Bucket=bucket, Key="ü space.csv")
    assert proxy.counts().injected == {FaultKind.INTERNAL_ERROR: 1}


def test_delay_holds_the_request_then_forwards_it(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")
    proxy.delay(0.5, method="GET")
    started = time.monotonic()
    assert s3.get_object(Bucket=bucket, Key="a.csv")["Body"].read() == b"x\n1\n"
    assert time.monotonic() - started >= 0.5
    assert proxy.counts().injected == {FaultKind.DELAY: 1}


def test_hold_keeps_a_put_in_flight_until_released_then_forwards_it(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    held = proxy.hold(method="PUT", path="/held/")
    done = threading.Event()
    putter = threading.Thread(
        target=lambda: (s3.put_object(Bucket=bucket, Key="held/a.txt", Body=b"late"), done.set()), daemon=True
    )
    putter.start()
    assert held.arrived.wait(10) and "held/a.txt" in held.target
    s3.put_object(Bucket=bucket, Key="other/b.txt", Body=b"on time")  # other requests pass meanwhile
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="held/")
    assert not done.is_set()

    held.release()
    putter.join(10)
    assert done.is_set() and held.forwarded.wait(5)
    assert s3.get_object(Bucket=bucket, Key="held/a.txt")["Body"].read() == b"late"
    assert proxy.counts().injected == {FaultKind.HOLD: 1}
    for key in ("held/a.txt", "other/b.txt"):
        s3.delete_object(Bucket=bucket, Key=key)


def test_delay_longer_than_the_read_timeout_surfaces_as_read_timeout(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT.merge(Config(read_timeout=0.3)))
    proxy.delay(2.0, method="GET")
    with pytest.raises(ReadTimeoutError):
        s3.list_objects_v2(Bucket=bucket)


def test_unreachable_proxy_refuses_connections_then_comes_back_on_the_same_port(proxy, s3_server, bucket):
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT.merge(Config(connect_timeout=2)))
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n1\n")  # leaves a pooled keep-alive connection open
    port = proxy.port
    with proxy.unreachable():
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            s3.get_object(Bucket=bucket, Key="a.csv")
        with pytest.raises(EndpointConnectionError):
            s3.get_object(Bucket=bucket, Key="a.csv")
    assert proxy.port == port
    assert s3.get_object(Bucket=bucket, Key="a.csv")["Body"].read() == b"x\n1\n"


def test_stop_ends_the_server_thread_and_frees_the_port(s3_server):
    proxy = S3FaultProxy(s3_server.endpoint_url).start()
    s3 = client_via(proxy, s3_server, ONE_ATTEMPT)
    s3.list_buckets()
    proxy.stop()
    assert not [t for t in threading.enumerate() if t.name == f"s3-fault-proxy-{proxy.port}"]
    with pytest.raises(EndpointConnectionError):
        client_via(proxy, s3_server, ONE_ATTEMPT).list_buckets()
