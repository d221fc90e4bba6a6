"""Generated docs are current, and the README's examples run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current() -> None:
    gen = load_generator()
    for filename, render in gen.PAGES.items():
        assert (ROOT / "docs" / filename).read_text() == render(), (
            f"docs/{filename} is stale: run `python docs/generate.py`"
        )


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (1, 10)
    assert namespace["bigger"].spec.resolution == 320


def test_no_placeholder_is_left_in_the_docs() -> None:
    """A results table filled in later must not ship as its placeholder (an ALL_CAPS token
    like GRAD_CHECKPOINTING_RESULTS on a line of its own)."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            assert not re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", line.strip()), (
                f"{page.name}:{n} is a placeholder: {line.strip()}"
            )
            assert "TODO" not in line and "TBD" not in line, f"{page.name}:{n}: {line.strip()}"
