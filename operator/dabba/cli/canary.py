"""``dabba canary get|promote|abort|retry|pause|resume``.

The manual controls only set (or, for ``resume``, remove) an annotation from
:mod:`dabba.k8s.meta`; the operator acts on it at its next evaluation and remembers the request
id (the annotation's RFC 3339 value) so each request fires once. The commands refuse requests
that make no sense from the current status, but only advisorily: status may lag one
evaluation behind, so ``--force`` sends the request anyway.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import click
from rich.console import Group
from rich.live import Live
from rich.text import Text

from dabba.cli import canary_view
from dabba.cli.errors import Failure, NotFound
from dabba.cli.humanize import format_time
from dabba.cli.kube import CANARY, Cluster, Obj, cluster_options
from dabba.cli.output import Printer, dump_document, output_option, rich_sections
from dabba.clock import SystemClock
from dabba.k8s import meta

#: Reads the watched Canary's document (raises NotFound once it is deleted).
Snapshot = Callable[[], dict[str, Any]]
#: Seconds between two reads in ``--watch``.
POLL_SECONDS: Final = 1.0


@click.group()
def canary() -> None:
    """Inspect and drive Canaries (progressive delivery)."""


def _document(cluster: Cluster, obj: Obj) -> dict[str, Any]:
    return canary_view.canary_document(obj, cluster.events(obj))


@canary.command("get")
@click.argument("name")
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Keep the view updated every second until Ctrl-C (piped: one line per change).",
)
@output_option()
@cluster_options()
def get(name: str, watch: bool, output: str | None, cluster: Cluster) -> None:
    """Phase, weight, each metric against its threshold, recent Events and history."""
    obj = cluster.get(CANARY, name)
    printer = Printer()
    if watch:
        _watch(cluster, obj, output, printer)
        return
    doc = _document(cluster, obj)
    if output:
        printer.document(doc, output)
        return
    now = SystemClock().now()
    printer.show(canary_view.canary_sections(doc, now, terminal=printer.is_terminal))


def _watch(cluster: Cluster, obj: Obj, output: str | None, printer: Printer) -> None:
    """Follow one Canary until Ctrl-C (exit 0) or until it is deleted (exit 1)."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]

    def snapshot() -> dict[str, Any]:
        current = cluster.read(CANARY, namespace, name)
        if current is None:
            raise NotFound(f"Canary {name} was deleted from namespace {namespace}")
        return _document(cluster, current)

    try:
        if printer.is_terminal and not output:
            _watch_live(snapshot, printer)
        else:
            _watch_lines(snapshot, output, printer)
    except KeyboardInterrupt:
        # why: Ctrl-C is how a person ends a watch: success, not click's "Aborted!" (exit 1).
        return
    except BrokenPipeError:
        # why: `| head` is how a script ends a watch. Point stdout at /dev/null so the
        # interpreter's final flush does not report the closed pipe a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return


def _watch_live(snapshot: Snapshot, printer: Printer) -> None:
    doc: dict[str, Any] | None = None
    with Live(console=printer.console, auto_refresh=False, transient=False) as live:
        while True:
            error = None
            try:
                doc = snapshot()
            except NotFound:
                raise
            except Failure as exc:  # why: a blip of the API server must not end the watch
                error = exc.message
            now = SystemClock().now()
            parts: list[Any] = []
            if doc is not None:
                parts.append(rich_sections(canary_view.canary_sections(doc, now, terminal=True)))
            footer = Text(f"\nWatching every {POLL_SECONDS:g}s; Ctrl-C to stop.", style="dim")
            if error:
                footer.append(f"  {error} (retrying)", style="bold red")
            parts.append(footer)
            live.update(Group(*parts), refresh=True)
            time.sleep(POLL_SECONDS)


def _watch_lines(snapshot: Snapshot, output: str | None, printer: Printer) -> None:
    last: str | None = None
    last_error: str | None = None
    seen: set[tuple[Any, ...]] = set()
    while True:
        try:
            doc: dict[str, Any] = snapshot()
        except NotFound:
            raise
        except Failure as exc:
            if exc.message != last_error:
                printer.note(f"{format_time(SystemClock().now())} {exc.message} (retrying)")
                last_error = exc.message
            time.sleep(POLL_SECONDS)
            continue
        last_error = None
        if output:
            current = dump_document(doc, "json", compact=True)
            if current != last:
                printer.document(doc, output, compact=True)
                last = current
        else:
            for event in doc["events"]:  # oldest first
                identity = (event["reason"], event["message"], event["lastSeen"], event["count"])
                if identity not in seen:
                    seen.add(identity)
                    printer.line(f"{event['lastSeen'] or '-'} {canary_view.event_line(event)}")
            line = canary_view.watch_line(doc)
            if line != last:
                printer.line(f"{format_time(SystemClock().now())} {line}")
                last = line
        time.sleep(POLL_SECONDS)


# ---------------------------------------------------------------------------------------------
# manual controls


def _report(
    printer: Printer,
    output: str | None,
    obj: Obj,
    action: str,
    annotation: str,
    value: str | None,
    changed: bool,
    text: str,
) -> None:
    if output:
        printer.document(
            {
                "kind": meta.CANARY_KIND,
                "namespace": obj["metadata"]["namespace"],
                "name": obj["metadata"]["name"],
                "action": action,
                "annotation": annotation,
                "value": value,
                "changed": changed,
            },
            output,
        )
    else:
        printer.line(text)


_REQUESTS: Final[Mapping[str, tuple[str, str, str]]] = {
    # action: (annotation, noun for the message, help)
    "promote": (
        meta.CANARY_PROMOTE_ANNOTATION,
        "promotion",
        "Skip the remaining steps and promote the canary now.",
    ),
    "abort": (
        meta.CANARY_ABORT_ANNOTATION,
        "abort (rollback)",
        "Roll the canary back now: all traffic to the primary.",
    ),
    "retry": (
        meta.CANARY_RETRY_ANNOTATION,
        "retry",
        "Run the failed revision again (no spec change needed).",
    ),
}


def _request_command(action: str) -> click.Command:
    annotation, noun, help_text = _REQUESTS[action]

    @click.command(action, help=help_text)
    @click.argument("name")
    @click.option(
        "--force",
        is_flag=True,
        help="Send the request even if the current status says it makes no sense.",
    )
    @output_option()
    @cluster_options()
    def command(name: str, force: bool, output: str | None, cluster: Cluster) -> None:
        obj = cluster.get(CANARY, name)
        if not force and (why := canary_view.refusal(action, canary_view.canary_document(obj, ()))):
            raise Failure(f"{why} (--force sends the request anyway)")
        value = format_time(SystemClock().now())
        cluster.annotate(obj, {annotation: value})
        ns = obj["metadata"]["namespace"]
        _report(
            Printer(),
            output,
            obj,
            action,
            annotation,
            value,
            True,
            f"Requested {noun} of Canary {ns}/{name} ({annotation}={value}). "
            f"The operator acts on it at its next evaluation; follow it with "
            f"`dabba canary get {name} -n {ns} --watch`.",
        )

    return command


for _action in _REQUESTS:
    canary.add_command(_request_command(_action))


@canary.command("pause")
@click.argument("name")
@output_option()
@cluster_options()
def pause(name: str, output: str | None, cluster: Cluster) -> None:
    """Hold the canary where it is (weights stay) until `resume`."""
    obj = cluster.get(CANARY, name)
    ns = obj["metadata"]["namespace"]
    key = meta.CANARY_PAUSE_ANNOTATION
    current = (obj["metadata"].get("annotations") or {}).get(key)
    if current is not None:
        _report(
            Printer(),
            output,
            obj,
            "pause",
            key,
            current,
            False,
            f"Canary {ns}/{name} is already paused ({key}={current}); nothing changed.",
        )
        return
    value = format_time(SystemClock().now())
    cluster.annotate(obj, {key: value})
    _report(
        Printer(),
        output,
        obj,
        "pause",
        key,
        value,
        True,
        f"Paused Canary {ns}/{name} ({key}={value}). The operator holds it at its next "
        f"evaluation; `dabba canary resume {name} -n {ns}` continues.",
    )


@canary.command("resume")
@click.argument("name")
@output_option()
@cluster_options()
def resume(name: str, output: str | None, cluster: Cluster) -> None:
    """Continue a paused canary."""
    obj = cluster.get(CANARY, name)
    ns = obj["metadata"]["namespace"]
    key = meta.CANARY_PAUSE_ANNOTATION
    if key not in (obj["metadata"].get("annotations") or {}):
        _report(
            Printer(),
            output,
            obj,
            "resume",
            key,
            None,
            False,
            f"Canary {ns}/{name} is not paused; nothing changed.",
        )
        return
    cluster.annotate(obj, {key: None})
    _report(
        Printer(),
        output,
        obj,
        "resume",
        key,
        None,
        True,
        f"Resumed Canary {ns}/{name} (removed {key}). The operator continues at its next "
        "evaluation.",
    )
