"""Command-line helpers every command shares: help that shows real defaults, and field docs for --help."""

from __future__ import annotations

import argparse
import dataclasses
import ast
import inspect
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and adds "(default: X)" where X means something (not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or isinstance(default, bool) or default in ("", argparse.SUPPRESS) \
                or action.required or not action.option_strings:
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


def add_config_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                       flags: dict[str, str] | None = None, types: dict | None = None,
                       choices: dict[str, tuple] | None = None) -> None:
    """One option per field of the dataclass `cls`, its help the field's docstring, its default the field's.

    A field defaulting to False becomes a switch (--near-dup), one defaulting to True a --no-NAME switch;
    `flags` renames an option, `types` converts its text (default: the default's type, else str),
    `choices` lists its allowed values. A field without a default is a required option.
    """
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = (flags or {}).get(f.name, "--" + f.name.replace("_", "-"))
        default = f.default
        if default is True:
            parser.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=docs[f.name])
        elif default is False:
            parser.add_argument(flag, dest=f.name, action="store_true", help=docs[f.name])
        else:
            required = default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            convert = (types or {}).get(f.name) or (type(default) if default not in (None, dataclasses.MISSING)
                                                     else str)
            parser.add_argument(flag, dest=f.name, type=convert, required=required,
                                default=None if required else default, choices=(choices or {}).get(f.name),
                                help=docs[f.name])


def config_from_args(cls, args: argparse.Namespace):
    """The dataclass `cls` built (and so validated) from the options add_config_options declared."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})
