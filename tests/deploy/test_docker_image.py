"""deploy/Dockerfile and the build context it gets: what `docker build` would copy (Docker's own .dockerignore rules,
from the `docker` package), and the shape of the build — lockfile first, no dev dependencies, pinned uv, not root."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docker.utils.build import exclude_paths

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()


NEEDED = (
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "workspace.yaml",
    "ingestion_project/definitions.py",
    "ingestion_project/warehouse_definitions.py",
    "dbt_project/dbt_project.yml",
    "dbt_project/profiles.yml",
)
MACHINE_FILES = (
    ".venv/bin/python",
    ".git/HEAD",
    ".local/s3/volume/1.dat",
    "data/warehouse.duckdb",
    "dagster_home/storage/runs.db",
    "dbt_project/target/manifest.json",
    "dbt_project/logs/dbt.log",
    "ingestion_project/__pycache__/config.cpython-311.pyc",
)


def build_context(root: Path) -> set[str]:
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return set(exclude_paths(str(root), patterns, dockerfile="deploy/Dockerfile"))


def instructions() -> list[tuple[str, str]]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


def test_the_build_context_holds_the_project_and_nothing_of_the_machine():
    context = build_context(REPO)
    for needed in NEEDED:
        assert needed in context, needed
    for prefix in (".venv/", ".git/", "tests/", "scripts/", "devtools/", "samples/"):
        leaked = sorted(path for path in context if path.startswith(prefix))
        assert not leaked, f"{prefix} would be copied into the image: {leaked[:3]}"


def test_what_a_developer_leaves_in_a_checkout_stays_out_of_the_image(tmp_path):
    """The same .dockerignore on a checkout with everything a developer's machine adds: none of it is copied."""
    shutil.copy(REPO / ".dockerignore", tmp_path / ".dockerignore")
    for path in (*NEEDED, "deploy/Dockerfile", *MACHINE_FILES):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    context = build_context(tmp_path)
    assert set(NEEDED) <= context
    assert not context & set(MACHINE_FILES), sorted(context & set(MACHINE_FILES))


def test_every_copy_source_is_in_the_build_context():
    context = build_context(REPO)
    for kind, argument in instructions():
        if kind != "COPY" or argument.startswith("--from"):
            continue
        *sources, _destination = argument.split()
        for source in sources:
            assert source in context or any(path.startswith(source.rstrip("/") + "/") for path in context), source


def test_the_dependencies_are_a_layer_of_their_own_built_from_the_lockfile():
    steps = instructions()
    copies = [argument for kind, argument in steps if kind == "COPY"]
    runs = [argument for kind, argument in steps if kind == "RUN"]
    assert copies[0].split()[:-1] == ["pyproject.toml", "uv.lock", "README.md"], "the lockfile comes first"
    first_sync = next(i for i, (kind, arg) in enumerate(steps) if kind == "RUN" and "uv sync" in arg)
    code_copy = next(i for i, (kind, arg) in enumerate(steps) if kind == "COPY" and "ingestion_project" in arg)
    assert first_sync < code_copy and "--no-install-project" in steps[first_sync][1]
    for run in (r for r in runs if "uv sync" in r):
        assert "--frozen" in run and "--no-dev" in run, run


def test_uv_is_pinned_and_the_image_does_not_run_as_root():
    version = re.search(r"ARG UV_VERSION=(\S+)", DOCKERFILE)
    assert version and re.fullmatch(r"\d+\.\d+\.\d+", version.group(1))
    assert '"uv==${UV_VERSION}"' in DOCKERFILE
    users = [argument for kind, argument in instructions() if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "cp deploy/dagster.yaml" not in DOCKERFILE  # under the chart, the instance is the chart's ConfigMap
