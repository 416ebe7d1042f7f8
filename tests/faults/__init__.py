"""Fault injection for tests: a loopback proxy in front of the local S3 server that can throttle, fail, reset,
delay or vanish on request (see :mod:`tests.faults.s3_proxy`)."""

from tests.faults.s3_proxy import FaultKind, Hold, ProxyCounts, S3FaultProxy, SeenRequest

__all__ = ["FaultKind", "Hold", "ProxyCounts", "S3FaultProxy", "SeenRequest"]
