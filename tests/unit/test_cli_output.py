"""What the CLI prints is data: a document's brackets, emoji codes and control characters come out as written."""

import io

import pytest
from rich.table import Table

import cli.common
from cli.errors import DataConsole, one_line, printable, say_error


def rendered(*objects) -> str:
    console = DataConsole(file=io.StringIO(), width=200, color_system=None)
    console.print(*objects)
    return console.file.getvalue()


def test_markup_and_emoji_codes_in_text_are_printed_as_written():
    # a plain rich Console raises MarkupError on the closing tag and swallows `[bold]`
    text = "config under [/etc], the [bold] flag, a :fire: tag, [link=http://x]y[/link]"
    assert rendered(text) == text + "\n"


def test_control_characters_are_escaped_newlines_and_tabs_kept():
    assert rendered("a\x1b[31mred\x1b[0m\rover\x07\x9b b\nc") == "a\\x1b[31mred\\x1b[0m\\rover\\x07\\x9b b\nc\n"
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("plain é ünïcödé 中文") == "plain é ünïcödé 中文"


def test_table_cells_are_data_too():
    table = Table("source", "reason")
    table.add_row("zebra[/x].txt\x1b]0;title\x07", "[red]bad[/red]")
    shown = rendered(table)
    assert "zebra[/x].txt\\x1b]0;title\\x07" in shown and "[red]bad[/red]" in shown


def test_a_name_is_shown_on_one_line():
    assert one_line("new\nline\tname\x1b.txt") == "new\\nline\\tname\\x1b.txt"


def test_a_hit_prints_its_name_on_one_line_and_its_snippet_verbatim(monkeypatch):
    console = DataConsole(file=io.StringIO(), width=300, color_system=None)
    monkeypatch.setattr(cli.common, "out", console)
    cli.common.print_hit(1, "a\nb[/i].txt", [3, 4], 0, 1.5, "see  [/etc]\n and :fire:")
    assert console.file.getvalue() == "  1. a\\nb[/i].txt  pp. 3-4  chunk 0  score 1.5000\n     see [/etc] and :fire:\n"


def test_an_error_naming_a_hostile_file_stays_one_plain_line(capsys):
    say_error("cannot read /data/a\x1b[2Jb[/x].txt:\nit moved")
    assert capsys.readouterr().err == "error: cannot read /data/a\\x1b[2Jb[/x].txt: it moved\n"


@pytest.mark.parametrize("console", [cli.common.out, cli.common.console])
def test_the_commands_consoles_are_data_consoles(console):
    assert isinstance(console, DataConsole)
