"""Every ```yaml block of README.md and docs/setup.md parses: configs by rotator's parser, others as YAML."""

import re

from pathlib import Path

import pytest

from rotator.doors.config import parse_config
from rotator.doors.config_yaml import load_yaml


ROOT = Path(__file__).parent.parent
DOCS = ("README.md", "docs/setup.md")
#: A block is a rotator config if it has either of these top-level keys (others, say a
#: PrometheusRule, only have to be YAML).
CONFIG_KEYS = frozenset({"gitlab", "targets"})
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(name: str) -> list[tuple[int, str]]:
    """Each ```yaml block of ``name``: its opening line number and its text."""
    text = (ROOT / name).read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _is_config(data: object) -> bool:
    return isinstance(data, dict) and bool(CONFIG_KEYS & data.keys())


@pytest.mark.parametrize(
    ("name", "line", "block"),
    [pytest.param(name, line, block, id=f"{name}:{line}") for name in DOCS for line, block in _blocks(name)],
)
def test_yaml_block_parses(name: str, line: int, block: str) -> None:
    """A yaml block is valid YAML (no duplicate key), and a config block passes rotator's config parser."""
    where = Path(f"{name}:{line}")
    data = load_yaml(block, where)
    if _is_config(data):
        config = parse_config(data, base_dir=ROOT)
        assert config.targets, f"{where}: a config with no target"


def test_setup_guide_has_both_worked_configs() -> None:
    """docs/setup.md holds a GitLab.com config and a self-managed one, and README its reference config."""
    configs = {name: [load_yaml(block, Path(name)) for _, block in _blocks(name)] for name in DOCS}
    setup = [parse_config(d, base_dir=ROOT) for d in configs["docs/setup.md"] if _is_config(d)]
    assert [c.gitlab.url for c in setup][:2] == ["https://gitlab.com", "https://gitlab.internal.example:8443"]
    assert any(_is_config(d) for d in configs["README.md"])


def test_readme_links_the_setup_guide() -> None:
    """README's "More:" line links docs/setup.md, and the guide's relative links point at files that exist."""
    readme = (ROOT / "README.md").read_text()
    more = next(line for line in readme.splitlines() if line.startswith("More:"))
    paragraph = readme[readme.index(more) :].split("\n\n", 1)[0]
    assert "(docs/setup.md)" in paragraph
    guide = (ROOT / "docs" / "setup.md").read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", guide):
        assert (ROOT / "docs" / target).resolve().exists(), target
