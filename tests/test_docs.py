"""The documentation keeps up with the code (as sqlite-utils' tests/test_docs.py does).

The README's Command line section names every subcommand and every option, found by walking
the real argparse parser (nested subcommands such as ``ledger adopt`` included; options hidden
with ``argparse.SUPPRESS`` are exempt), and names none that does not exist; every ``--help``
ends with examples that run that command, each one a command line the parser accepts; and
every ``ELOQUA_*`` variable the code reads is in the README's Configuration section. A command
or option added later is covered without touching this file.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.cli import PROG, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPTION = re.compile(r"(?<![\w-])--?[a-zA-Z][\w-]*")

Command = tuple[str, ...]  # ("ledger", "adopt"); () is eloqua-import itself


def commands(parser: argparse.ArgumentParser, path: Command = ()) -> Iterator[Command]:
    """Every command path of the parser, depth first, each once (aliases skipped)."""
    yield path
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from commands(sub, (*path, name))


def parser_of(command: Command) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[name]
    return parser


def options(command: Command) -> list[list[str]]:
    """Each documented option's spellings (-o, --output); --help and hidden ones left out."""
    return [
        list(action.option_strings)
        for action in parser_of(command)._actions
        if action.option_strings
        and action.help != argparse.SUPPRESS
        and not isinstance(action, argparse._HelpAction)
    ]


ALL = list(commands(build_parser()))
IDS = [" ".join(c) or PROG for c in ALL]


def named(command: Command) -> str:
    return " ".join((PROG, *command))


def section(title: str) -> str:
    """The README section under ``## <title>``, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def usage_blocks() -> dict[Command, str]:
    """The Command line section's code block, cut at each line starting with the program's
    name, keyed by the command path the line names; blocks for one command are joined."""
    code = "\n".join(re.findall(r"^```\w*\n(.*?)^```", section("Command line"), re.M | re.S))
    known = set(ALL)
    blocks: dict[Command, str] = {}
    for block in re.split(rf"^(?={re.escape(PROG)} )", code, flags=re.M):
        if not block.startswith(PROG):
            continue
        command: Command = ()
        for word in block.split()[1:]:
            if (*command, word) not in known:
                break
            command = (*command, word)
        blocks[command] = blocks.get(command, "") + block
    return blocks


@pytest.mark.parametrize("command", ALL, ids=IDS)
def test_readme_command_line_shows_every_command(command):
    shown = [c for c in usage_blocks() if c[: len(command)] == command]
    assert shown, f"README, Command line: add a line '{named(command)} ...'"


@pytest.mark.parametrize("command", ALL, ids=IDS)
def test_readme_command_line_names_every_option_of_every_command(command):
    block = usage_blocks().get(command, "")
    shown = set(OPTION.findall(block))
    missing = [spellings[-1] for spellings in options(command) if not shown & set(spellings)]
    assert not missing, f"README, Command line, '{named(command)}': add {', '.join(missing)}"


@pytest.mark.parametrize("command", ALL, ids=IDS)
def test_readme_command_line_names_no_option_that_does_not_exist(command):
    block = usage_blocks().get(command, "")
    real = {s for spellings in options(command) for s in spellings} | {"-h", "--help"}
    stale = sorted(set(OPTION.findall(block)) - real)  # comments' options count too
    assert not stale, f"README, Command line, '{named(command)}': there is no {stale}"


def examples(command: Command, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The command lines in the examples of ``<command> --help`` (continuations joined)."""
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out.lower(), f"'{named(command)} --help' has no examples"
    text = out[out.lower().index("examples:") :].replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith(f"{PROG} ")]


@pytest.mark.parametrize("command", ALL, ids=IDS)
def test_every_help_ends_with_examples_of_that_command(command, capsys):
    lines = examples(command, capsys)
    assert any(line.startswith(f"{named(command)} ") for line in lines), (
        f"the examples of '{named(command)} --help' never run it"
    )


@pytest.mark.parametrize("command", ALL, ids=IDS)
def test_every_example_in_the_help_is_a_valid_command_line(command, capsys):
    for line in examples(command, capsys):
        words = shlex.split(line, comments=True)[1:]
        try:
            build_parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"'{named(command)} --help' shows an example argparse refuses: {line}")


def parsed(parser: argparse.ArgumentParser, words: list[str], capsys) -> tuple:
    """What the parser makes of the words: the options read, or the exit and what it printed."""
    try:
        return vars(parser.parse_args(words)), None
    except SystemExit as exc:
        return exc.code, capsys.readouterr()


@pytest.mark.parametrize("command", ALL[1:], ids=IDS[1:])
def test_the_parser_of_the_command_given_reads_as_the_whole_one(command, capsys):
    # main builds only the part of the parser the command named first needs (a quicker start).
    tries = [[*command, "--help"], [*command, "--no-such-option"], list(command)]
    tries += [shlex.split(line, comments=True)[1:] for line in examples(command, capsys)]
    for words in tries:
        alone = parsed(build_parser(words[0]), words, capsys)
        assert alone == parsed(build_parser(), words, capsys), words


def variables_the_code_reads() -> set[str]:
    """ELOQUA_* names in the package's string literals (code that reads the environment, and
    messages that tell users what to set); Python names such as ELOQUA_FOO = 1 are not."""
    names: set[str] = set()
    for path in (ROOT / "importer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names |= set(re.findall(r"\bELOQUA_[A-Z0-9_]*[A-Z0-9]", node.value))
    return names


def test_the_code_reads_the_environment_variables_this_test_knows_of():
    # The search itself works: the ones configuration has always read are found.
    assert {"ELOQUA_COMPANY", "ELOQUA_PASSWORD", "ELOQUA_BASE_URL"} <= variables_the_code_reads()


@pytest.mark.parametrize("name", sorted(variables_the_code_reads()))
def test_readme_configuration_lists_every_environment_variable(name):
    assert f"`{name}`" in section("Configuration"), (
        f"README, Configuration (environment): add a row for `{name}`"
    )
