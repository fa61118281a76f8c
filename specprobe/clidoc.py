"""The command-line reference (``docs/cli.md``), generated from the typer app itself.

    python -m specprobe.clidoc > docs/cli.md

``tests/test_clidoc.py`` fails when the file and the app disagree, so the reference cannot go stale.
"""

from __future__ import annotations

HEADER = """# Command-line reference

Generated from the typer app by `python -m specprobe.clidoc > docs/cli.md`; a test fails when this
file is out of date. `specprobe COMMAND --help` prints the same in the terminal.
"""


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param) -> str:
    value = param.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == () or callable(value):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _is_option(param) -> bool:
    # duck-typed: typer ships its own copy of click (typer._click), so click's classes may not match
    return getattr(param, "param_type_name", "") == "option"


def _names(param) -> str:
    if not _is_option(param):
        return f"`{param.name.upper()}`" + ("..." if getattr(param, "nargs", 1) == -1 else "")
    names = list(param.opts) + [f"/{o}" if not o.startswith("-") else o for o in param.secondary_opts]
    return " / ".join(f"`{n}`" for n in names)


def render() -> str:
    """Markdown for every command: usage, help text, and a table of its arguments and options."""
    import typer.main

    from .cli import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="specprobe")
    out = [HEADER]
    globals_ = [p for p in group.params if _is_option(p) and not p.hidden]
    if globals_:
        out.append("Options before the command: " + "; ".join(
            f"{_names(p)}: {_cell(p.help or '').rstrip('.')}" for p in globals_) + ".\n")
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = cmd.context_class(cmd, info_name=name, parent=ctx)
        out.append(f"## `specprobe {name}`\n")
        out.append("```\n" + " ".join(cmd.collect_usage_pieces(sub)).join([f"specprobe {name} ", ""]) + "\n```\n")
        if cmd.help:
            out.append(cmd.help.strip() + "\n")
        rows = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
        if rows:
            out.append("| argument / option | default | what it does |\n|---|---|---|")
            for p in rows:
                out.append(f"| {_names(p)} | {_cell(_default(p))} | {_cell(getattr(p, 'help', None) or '')} |")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
