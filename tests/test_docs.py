"""The documentation: the README's commands and example are the ones CI and the
docs run, and the site builds without warnings with a page for every public name.

The full build (example gallery executed) is a step of ``.ci/run``; here the site
is built with the gallery's code shown but not run, which takes seconds.
"""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
DOCS_BUILD = "python -m sphinx -W --keep-going -b html docs docs/_build/html"


def _blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)\n```", text, re.S)


def test_readme_shows_two_commands_the_first_two_blocks():
    commands = _blocks(README, "bash")
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert main_job.endswith("python -m sklearn_leuko cv")
    assert tests.endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = [line for line in CI.splitlines() if line and not line.startswith("#")]
    assert _blocks(README, "bash")[1] in ci_lines


def test_getting_started_shows_the_readme_commands_verbatim():
    getting_started = (ROOT / "docs" / "getting-started.md").read_text()
    for command in _blocks(README, "bash"):
        assert command in _blocks(getting_started, "bash")


def test_readme_example_is_the_executed_quickstart_example():
    (example,) = _blocks(README, "python")
    source = (ROOT / "examples" / "plot_quickstart.py").read_text()
    marked = re.search(
        r"# README example: start\n(.*?)\n# README example: end", source, re.S
    )
    assert marked, "examples/plot_quickstart.py lost its README markers"
    assert example == marked.group(1)
    assert len([line for line in example.splitlines() if line.strip()]) <= 15


def test_readme_is_short():
    assert len(README.encode()) <= 8 * 1024


def test_docs_build_command_is_the_one_ci_runs_and_contributing_documents():
    assert DOCS_BUILD in CI.splitlines()
    assert DOCS_BUILD in (ROOT / "CONTRIBUTING.md").read_text()
    assert DOCS_BUILD in (ROOT / "docs" / "conf.py").read_text()


def test_readme_links_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_api_coverage_check_sees_a_missing_page(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from api_coverage import missing_pages, public_names
    finally:
        sys.path.pop(0)
    names = public_names()
    assert "sklearn_leuko.LeukoNetClassifier" in names
    assert "sklearn_leuko.datasets.make_cells" in names
    (tmp_path / "sklearn_leuko.LeukoNetClassifier.rst").write_text("x")
    missing = missing_pages(tmp_path)
    assert "sklearn_leuko.LeukoNetClassifier" not in missing
    assert "sklearn_leuko.datasets.make_cells" in missing


@pytest.mark.slow
def test_docs_build_without_warnings_and_every_public_name_has_a_page(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    # a copy, so that the generated pages do not land in the working tree
    for folder in ("docs", "examples"):
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("_build", "auto_examples", "generated"),
        )
    for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "dummy",
         "-D", "plot_gallery=0", "-q", "docs", "_build"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    pages = list((tmp_path / "docs" / "api" / "generated").glob("*.rst"))
    assert len(pages) > 50
