"""Command-line helpers every command shares: help that shows real defaults, and field docs for --help."""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and adds "(default: X)" where X means something (not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default in (None, False, "", argparse.SUPPRESS) or action.required \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def field_docs(cls) -> dict[str, str]:
    """The one-line docstrings written under a dataclass's fields, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
