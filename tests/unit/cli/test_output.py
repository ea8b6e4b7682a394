"""Tables and documents: plain text for pipes, rich for terminals, json/yaml for scripts."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.console import Console
from rich.text import Text

from dabba.cli.output import (
    Column,
    Fields,
    Table,
    dump_document,
    plain_sections,
    plain_table,
    rich_sections,
    styled,
)

TABLE = Table(
    columns=(Column("Name"), Column("Weight", justify="right"), Column("Message", max_width=10)),
    rows=[
        ("podinfo", "5%", "all good"),
        (styled("a-much-longer-name", "bold"), "100%", "this message is far too long"),
    ],
)


def test_plain_table_is_kubectl_style() -> None:
    lines = plain_table(TABLE)
    assert lines == [
        "NAME                 WEIGHT   MESSAGE",
        "podinfo                  5%   all good",
        "a-much-longer-name     100%   this mess…",
    ]
    assert all(line == line.rstrip() for line in lines)


def test_plain_table_shows_the_empty_text() -> None:
    assert plain_table(Table((Column("Name"),), [], empty="nothing here")) == ["nothing here"]


def test_plain_sections_indent_titled_sections() -> None:
    text = plain_sections(
        [
            Fields(
                [("Phase", styled("Progressing", "cyan")), ("Last promoted", "-")], "Canary a/b"
            ),
            Table((Column("Metric"),), [("request-success-rate",)], title="Analysis"),
        ]
    )
    assert text == (
        "Canary a/b:\n"
        "  Phase:          Progressing\n"
        "  Last promoted:  -\n"
        "\n"
        "Analysis:\n"
        "  METRIC\n"
        "  request-success-rate"
    )


def test_rich_sections_render_cells_and_titles() -> None:
    console = Console(record=True, width=100, color_system=None)
    console.print(rich_sections([Fields([("Phase", Text("Failed"))], "Canary a/b"), TABLE]))
    screen = console.export_text()
    assert "Canary a/b" in screen
    assert "Failed" in screen
    assert "a-much-longer-name" in screen
    assert "WEIGHT" in screen


def test_documents_parse_back() -> None:
    doc = {"items": [{"name": "payments", "ready": True, "notAfter": None}]}
    assert json.loads(dump_document(doc, "json")) == doc
    assert yaml.safe_load(dump_document(doc, "yaml")) == doc
    compact = dump_document(doc, "json", compact=True)
    assert compact.count("\n") == 1
    assert json.loads(compact) == doc
    assert dump_document(doc, "yaml", compact=True).startswith("---\n")
    with pytest.raises(ValueError, match="unknown document format"):
        dump_document(doc, "xml")
