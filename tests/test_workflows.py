"""The publishing set-up in .github/, checked offline: these workflows need the internet and
GitHub, so they cannot run here, but they must be valid for GitHub (check-jsonschema's copies of
the GitHub workflow and Dependabot schemas) and do what README.md says they do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
CHECK = Path(sys.executable).parent / "check-jsonschema"


def schema_check(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK), "--builtin-schema", schema, str(path)], capture_output=True, text=True)


def load(name: str) -> dict:
    text = (GITHUB / name).read_text()
    data = yaml.safe_load(text)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_is_valid_for_github(path):
    result = schema_check("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_config_is_valid_and_keeps_jupyter_book_below_2():
    result = schema_check("vendor.dependabot", GITHUB / "dependabot.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    pip = [u for u in load("dependabot.yml")["updates"] if u["package-ecosystem"] == "pip"]
    assert pip, "no updates of requirements.txt"
    ignored = {rule["dependency-name"]: rule["versions"] for rule in pip[0]["ignore"]}
    assert ignored.get("jupyter-book") == [">=2"]


def test_a_broken_workflow_is_caught(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  build:\n    steps:\n      - run: make book\n")  # no runs-on
    assert schema_check("vendor.github-workflows", broken).returncode != 0


def test_publishing_builds_the_site_and_pdf_with_the_readmes_commands_and_deploys_them():
    pages = load("workflows/pages.yml")
    runs = [step.get("run", "") for step in steps(pages)]
    assert "make book" in runs and "make pdf" in runs
    uses = [step.get("uses", "") for step in steps(pages)]
    upload = [s for s in steps(pages) if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    assert pages["permissions"]["pages"] == "write" and "main" in pages["on"]["push"]["branches"]


def test_colab_workflow_runs_every_notebook_weekly_in_colabs_image_and_opens_an_issue():
    colab = load("workflows/colab.yml")
    assert colab["on"]["schedule"], "not scheduled"
    run = colab["jobs"]["run"]
    assert run["container"]["image"].startswith("us-docker.pkg.dev/colab-images/public/runtime")
    assert "chapters() + solutions()" in yaml.safe_dump(colab["jobs"]["notebooks"])
    report = colab["jobs"]["report"]
    assert report["if"] == "failure()" and "issues.create" in report["steps"][0]["with"]["script"]
    assert colab["permissions"]["issues"] == "write"


def test_link_check_is_scheduled_over_the_built_site():
    links = load("workflows/links.yml")
    assert links["on"]["schedule"]
    checked = [s for s in steps(links) if s.get("uses", "").startswith("lycheeverse/lychee-action")]
    assert checked and "_build/html/**/*.html" in checked[0]["with"]["args"]
    assert "make book" in [s.get("run", "") for s in steps(links)]
