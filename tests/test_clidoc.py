"""docs/cli.md is the typer app's reference, regenerated; it must never go stale."""

from pathlib import Path

from specprobe.clidoc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date():
    assert DOC.read_text() == render(), "docs/cli.md is out of date: run python -m specprobe.clidoc > docs/cli.md"


def test_every_command_and_option_is_in_the_reference():
    import typer.main

    from specprobe.cli import app

    group = typer.main.get_command(app)
    text = render()
    ctx = group.context_class(group, info_name="specprobe")
    for name in group.list_commands(ctx):
        assert f"## `specprobe {name}`" in text
        for p in group.get_command(ctx, name).params:
            if p.param_type_name == "option" and p.name != "help":
                assert f"`{p.opts[0]}`" in text, (name, p.opts)
