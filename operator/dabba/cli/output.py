"""One output layer for every command: documents (``-o json|yaml``), tables and fields.

A command builds a *document* (a dict with stable keys, lists under ``items``) for scripts,
and *sections* (:class:`Fields`, :class:`Table`) from the same data for people. Sections are
rendered two ways:

* on a terminal with ``rich``: colour, boxed headers, long cells ellipsised to the width;
* when piped, as plain kubectl-style text: upper-case headers, columns three spaces apart,
  no colour, no wrapping and no trailing spaces, so ``grep``/``awk`` work and a log file
  reads the same as the screen. (``rich`` would wrap to an assumed 80 columns when it cannot
  see a terminal, which breaks exactly those tools.)

Colour follows rich's rules, including ``NO_COLOR`` and ``FORCE_COLOR``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar

import click
import yaml
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])

#: A table cell or field value: plain text, or rich ``Text`` carrying colour for terminals.
Cell = str | Text

#: Machine-readable formats every command accepts.
DOCUMENT_FORMATS: Final = ("json", "yaml")
#: Gap between plain-text columns (kubectl uses three spaces).
_GAP: Final = "   "


def output_option(*extra: str) -> Callable[[F], F]:
    """``-o/--output`` with json and yaml, plus ``extra`` table variants such as ``wide``."""
    choices = (*DOCUMENT_FORMATS, *extra)
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(choices),
        default=None,
        help=f"Output format: {', '.join(choices)}. Default: text for people "
        "(colour on a terminal, plain when piped).",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """A table column."""

    header: str
    justify: Literal["left", "right"] = "left"
    #: Cut cells longer than this (``…``); None keeps them whole.
    max_width: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """Rows under headers; ``title`` names the section when there are several."""

    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]]
    title: str | None = None
    #: Shown instead of the table when there are no rows.
    empty: str = "none"


@dataclasses.dataclass(frozen=True, slots=True)
class Fields:
    """``Label: value`` lines, like the top of ``kubectl describe``."""

    items: Sequence[tuple[str, Cell]]
    title: str | None = None


Section = Table | Fields


def styled(text: str, style: str | None) -> Cell:
    """``text`` with a rich style (colour shows only on a terminal)."""
    return Text(text, style=style) if style else text


def plain(cell: Cell) -> str:
    """The text of a cell without any styling."""
    return cell.plain if isinstance(cell, Text) else cell


def _cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def plain_table(table: Table) -> list[str]:
    """The table as kubectl-style lines (no title, no colour, no trailing spaces)."""
    if not table.rows:
        return [table.empty]
    columns = table.columns
    cells = [
        [_cut(plain(c), col.max_width) for c, col in zip(row, columns, strict=True)]
        for row in table.rows
    ]
    headers = [col.header.upper() for col in columns]
    widths = [max(len(headers[i]), *(len(r[i]) for r in cells)) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if col.justify == "right" else v.ljust(w)
            for v, w, col in zip(values, widths, columns, strict=True)
        ]
        return _GAP.join(parts).rstrip()

    return [line(headers), *(line(r) for r in cells)]


def plain_fields(fields: Fields) -> list[str]:
    """``Label:`` aligned lines."""
    width = max((len(label) for label, _ in fields.items), default=0) + 1
    return [f"{label + ':':<{width}}  {plain(value)}".rstrip() for label, value in fields.items]


def plain_sections(sections: Sequence[Section]) -> str:
    """Every section as plain text; titled sections are headed and indented two spaces."""
    blocks: list[str] = []
    for section in sections:
        lines = plain_table(section) if isinstance(section, Table) else plain_fields(section)
        if section.title:
            lines = [f"{section.title}:", *(f"  {line}".rstrip() for line in lines)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def rich_section(section: Section) -> RenderableType:
    """One section as a rich renderable."""
    if isinstance(section, Fields):
        grid = RichTable.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, value in section.items:
            grid.add_row(label, value)
        if section.title is None:
            return grid
        return Panel(
            grid, title=Text(section.title, style="bold"), title_align="left", expand=False
        )
    table = RichTable(
        box=box.SIMPLE_HEAD,
        title=Text(section.title, style="bold") if section.title else None,
        title_justify="left",
        header_style="bold",
        pad_edge=False,
        show_edge=False,
    )
    for col in section.columns:
        table.add_column(
            col.header.upper(),
            justify=col.justify,
            max_width=col.max_width,
            overflow="ellipsis" if col.max_width else "fold",
            no_wrap=col.max_width is not None,
        )
    for row in section.rows:
        table.add_row(*row)
    if not section.rows:
        empty = Text(section.empty, style="dim")
        return Group(Text(section.title, style="bold"), empty) if section.title else empty
    return table


def rich_sections(sections: Sequence[Section]) -> RenderableType:
    """All sections, a blank line apart."""
    parts: list[RenderableType] = []
    for i, section in enumerate(sections):
        if i:
            parts.append(Text(""))
        parts.append(rich_section(section))
    return Group(*parts)


def dump_document(doc: Mapping[str, Any], fmt: str, *, compact: bool = False) -> str:
    """``doc`` as JSON or YAML text (ending in a newline).

    Args:
        doc: the document (JSON-compatible values only).
        fmt: ``json`` or ``yaml``.
        compact: one line of JSON (a stream of documents), or a ``---``-led YAML document.
    """
    if fmt == "json":
        if compact:
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    if fmt == "yaml":
        text = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True)
        return f"---\n{text}" if compact else text
    raise ValueError(f"unknown document format {fmt!r}")


class Printer:
    """Where a command writes: stdout for results, stderr for notes."""

    def __init__(self, console: Console | None = None) -> None:
        # why: created per command, so click's CliRunner (which swaps sys.stdout) is honoured.
        self.console = console or Console(highlight=False, soft_wrap=False)

    @property
    def is_terminal(self) -> bool:
        """Whether stdout is a terminal (tables and colour) or a pipe/file (plain text)."""
        return self.console.is_terminal

    def document(self, doc: Mapping[str, Any], fmt: str, *, compact: bool = False) -> None:
        """Print a machine-readable document."""
        click.echo(dump_document(doc, fmt, compact=compact), nl=False)

    def show(self, sections: Sequence[Section]) -> None:
        """Print sections for a person."""
        if self.is_terminal:
            self.console.print(rich_sections(sections))
        else:
            click.echo(plain_sections(sections))

    def line(self, text: Cell) -> None:
        """One line of result text."""
        if self.is_terminal:
            self.console.print(text)
        else:
            click.echo(plain(text))

    @staticmethod
    def note(message: str) -> None:
        """A remark for the person at the terminal (stderr, so pipes stay clean)."""
        click.echo(message, err=True)
