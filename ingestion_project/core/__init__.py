"""The shared core that every domain uses and none extends: asset keys, partitions, resources, failure classes,
dead letters, the run model's leases and reconciliation. It imports no domain (tests/test_architecture.py)."""
