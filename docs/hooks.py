"""MkDocs hooks: pages generated from the repository at build time (nothing to keep in sync).

* ``index.md`` is README.md and ``benchmarks.md`` is benchmarks/README.md, with their links
  rewritten for the site: a link to a page of the site points to it; a link to any other
  file of the repository (a result CSV, a script) becomes its repository path, and the
  build fails if that path does not exist (so a broken link fails ``mkdocs build --strict``
  here too).
* ``reference/cli.md`` (committed, so the README can link to it) is the ``--help`` of every
  ``iaprune`` command; the build fails when it is stale. ``python docs/hooks.py`` rewrites it.
* ``api/index.md``: the line ``<!-- exports -->`` becomes the table of the names that
  ``import iaprune`` exports (``iaprune._EXPORTS``), each linked to its reference entry.
* A public name (``__all__``) of a documented module without a docstring is a warning, so
  ``mkdocs build --strict`` fails on it (mkdocstrings itself renders it silently).
* The docstrings' Sphinx roles (``:class:`~iaprune.cost.CostModel```), which the Markdown
  renderer leaves as text, become code spans; a fully qualified name also links to its
  entry when the reference documents it; a paragraph's closing ``::`` becomes ``:``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("mkdocs.hooks.iaprune")  # a warning fails the strict build

# repository path -> site page; docs/* maps to itself without the docs/ prefix
GENERATED = {"README.md": "index.md", "benchmarks/README.md": "benchmarks.md"}

CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"

LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")


def _site_path(repo_path: str) -> str | None:
    """The site page of a repository file, or None when the site does not have it."""
    if repo_path in GENERATED:
        return GENERATED[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/") :]
    return None


def rewrite_links(text: str, source: str, page: str) -> str:
    """``text`` (the file ``source`` of the repository) with links fit for the site ``page``."""

    def one(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if not (ROOT / repo_path).exists():
            raise PluginError(f"{source}: link to {target!r}: {repo_path} does not exist")
        site = _site_path(repo_path)
        if site is not None and (ROOT / "docs" / site).is_dir():
            site = None  # a folder is not a page
        if site is not None:
            new = posixpath.relpath(site, posixpath.dirname(page) or ".")
            return f"{bang}[{label}]({new}{'#' + anchor if anchor else ''})"
        shown = f"`{repo_path}{'/' if (ROOT / repo_path).is_dir() else ''}`"
        if bang or label.strip("`").rstrip("/") == path.rstrip("/"):
            return shown
        return f"{label} ({shown})"

    return LINK.sub(one, text)


def cli_reference() -> str:
    """The --help text of ``iaprune`` and of every subcommand, one section each."""
    import argparse

    from iaprune.cli.main import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width
    parser = build_parser()
    parts = [
        "# CLI reference\n",
        "Generated from `iaprune --help` and `iaprune COMMAND --help` by "
        "`python docs/hooks.py`; the site's build fails when this page is stale. The "
        "[user guide](../guide/budgets.md) explains what the options do together.\n",
        "```text\n" + parser.format_help() + "```\n",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, child in sub.choices.items():
        parts.append(f"## `iaprune {name}`\n")
        parts.append("```text\n" + child.format_help() + "```\n")
    return "\n".join(parts)


# Modules with a reference page of their own: their names link there.
API_PAGES = ("iaprune.pruning", "iaprune.search", "iaprune.cost", "iaprune.models", "iaprune.data")
# Public modules whose public names (``__all__``) must each have a docstring.
DOCUMENTED = (
    "iaprune",
    "iaprune.pruning",
    "iaprune.search",
    "iaprune.cost",
    "iaprune.cost.latency",
    "iaprune.cost.lut",
    "iaprune.reports",
    "iaprune.testing.latency",
    "iaprune.testing.cost",
    "iaprune.testing.importance",
    "iaprune.testing.datasets",
    "iaprune.importance",
    "iaprune.models",
    "iaprune.data",
    "iaprune.config",
    "iaprune.pipeline",
)


def exports_section() -> str:
    """``iaprune``'s top-level names: a table linking each to its reference entry, and the
    entries of the names whose module has no page of its own."""
    import iaprune

    rows = ["| name | imported from |", "|---|---|"]
    here = []
    for name in sorted(iaprune._EXPORTS):
        module = iaprune._EXPORTS[name]
        if module in API_PAGES:
            ref = f"{module}.{name}"
        elif module == "iaprune.timing":
            ref = f"iaprune.cost.{name}"  # re-exported and documented there
        else:
            ref = f"{module}.{name}"
            here.append(ref)
        rows.append(f"| [`{name}`][{ref}] | `{module}` |")
    blocks = [f"::: {ref}\n    options:\n      heading_level: 3\n" for ref in here]
    return "\n".join(rows) + "\n\n## Configuration, pipeline and session\n\n" + "\n".join(blocks)


def missing_docstrings() -> list[str]:
    """Public names of the :data:`DOCUMENTED` modules (and public methods of their classes)
    without a docstring; a contract suite's ``test_*`` methods are named for what they test."""
    import griffe

    package = griffe.load("iaprune", search_paths=[str(ROOT / "src")], resolve_aliases=True)
    missing = []
    for path in DOCUMENTED:
        module = package if path == "iaprune" else package[path.removeprefix("iaprune.")]
        for name in module.exports or []:
            target = module[str(name)]
            target = target.final_target if target.is_alias else target
            if not target.docstring:
                missing.append(f"{path}.{name}")
            if not target.is_class:
                continue
            for member_name, member in target.members.items():
                if member_name.startswith(("_", "test_")) or member.is_alias:
                    continue
                if member.is_function and not member.docstring:
                    missing.append(f"{path}.{name}.{member_name}")
    return missing


def on_config(config: Any, **_: Any) -> Any:
    for name in missing_docstrings():
        log.warning("public name without a docstring: %s", name)
    if CLI_PAGE.read_text(encoding="utf-8") != cli_reference():
        log.warning("%s is stale: run `python docs/hooks.py`", CLI_PAGE.relative_to(ROOT))
    return config


def on_files(files: Files, config: Any, **_: Any) -> Files:
    for source, page in GENERATED.items():
        text = rewrite_links((ROOT / source).read_text(encoding="utf-8"), source, page)
        files.append(File.generated(config, page, content=text))
    return files


ROLE = re.compile(r":(?:class|func|meth|data|mod|attr|exc|obj):<code>(~?)([^<]*)</code>")


def _role(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    shown = name.rsplit(".", 1)[-1] if tilde else name
    if name.startswith("iaprune."):
        return f'<autoref identifier="{name}" optional><code>{shown}</code></autoref>'
    return f"<code>{shown}</code>"


def on_page_content(html: str, **_: Any) -> str:
    return ROLE.sub(_role, html).replace("::</p>", ":</p>")  # reST's "Typical use::"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "api/index.md":
        return markdown.replace("<!-- exports -->", exports_section())
    return markdown


if __name__ == "__main__":
    CLI_PAGE.write_text(cli_reference(), encoding="utf-8")
    print(f"wrote {CLI_PAGE.relative_to(ROOT)}")
