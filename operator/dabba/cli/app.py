"""``dabba`` — run the operator and drive Canaries and MeshCertificates from a terminal.

Exit codes a script can rely on: 0 success, 1 the operation failed, 2 usage or configuration
error (click's convention).
"""

from __future__ import annotations

import os
import sys
from typing import Any, cast

import click

from dabba import __version__
from dabba.cli.canary import canary as canary_group
from dabba.cli.cert import cert as cert_group
from dabba.cli.status import status as status_command
from dabba.errors import ConfigError

#: Seconds `dabba run` waits for running reconciles after SIGTERM before exiting anyway
#: (Kubernetes sends SIGKILL after terminationGracePeriodSeconds, 30 s by default).
SHUTDOWN_GRACE = 5.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dabba")
def cli() -> None:
    """dabba: progressive delivery and workload certificate rotation for a service mesh."""


@cli.command()
@click.option(
    "-A",
    "--all-namespaces",
    "all_namespaces",
    is_flag=True,
    default=None,
    help="Watch every namespace (the default when no -n is given).",
)
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace; repeat for several. Env: DABBA_NAMESPACES=a,b",
)
@click.option("--prometheus-url", help="Default Prometheus for analysis. Env: DABBA_PROMETHEUS_URL")
@click.option("--listen-host", help="Address of the health/metrics server. Env: DABBA_LISTEN_HOST")
@click.option(
    "--metrics-port", help="Port of /healthz and /metrics [8080]. Env: DABBA_METRICS_PORT"
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    help="auto = JSON unless stderr is a terminal. Env: DABBA_LOG_FORMAT",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Env: DABBA_LOG_LEVEL [info]",
)
@click.option("--peering", "peering_name", help="kopf peering object for leader election [dabba]")
@click.option(
    "--standalone/--no-standalone",
    default=None,
    help="Run without leader election (a single replica).",
)
@click.option("--priority", help="Leader-election priority; the highest live replica acts.")
def run(
    all_namespaces: bool | None,
    namespaces: tuple[str, ...],
    prometheus_url: str | None,
    listen_host: str | None,
    metrics_port: str | None,
    log_format: str | None,
    log_level: str | None,
    peering_name: str | None,
    standalone: bool | None,
    priority: str | None,
) -> None:
    """Run the operator (both controllers) against the current kubeconfig or in-cluster."""
    # Imported here so `dabba status` and friends start fast and need no kopf registry.
    from dabba import config as config_mod  # noqa: PLC0415
    from dabba import logging as dabba_logging  # noqa: PLC0415

    try:
        cfg = config_mod.parse(
            all_namespaces=all_namespaces,
            namespaces=namespaces,
            prometheus_url=prometheus_url,
            listen_host=listen_host,
            metrics_port=metrics_port,
            log_format=log_format,
            log_level=log_level,
            peering_name=peering_name,
            standalone=standalone,
            priority=priority,
            env=os.environ,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    dabba_logging.configure(cfg.log_format, cfg.log_level)

    import kopf  # noqa: PLC0415

    import dabba.main  # noqa: F401, PLC0415 - registers the handlers

    kopf.run(
        clusterwide=cfg.clusterwide,
        namespaces=cfg.namespaces,
        standalone=cfg.standalone,
        peering_name=None if cfg.standalone else cfg.peering_name,
        priority=cfg.priority,
        # Ours, not kopf's generated one: dabba.leadership finds this replica by it.
        identity=cast("Any", cfg.identity),
        memo=kopf.Memo(config=cfg),
    )
    from dabba.deps import drain  # noqa: PLC0415

    still_running = drain(SHUTDOWN_GRACE)
    if still_running:
        import structlog  # noqa: PLC0415

        structlog.get_logger("dabba").warning(
            "exiting with reconciles still running; they resume on the next start",
            still_running=still_running,
            grace_seconds=SHUTDOWN_GRACE,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# The inspection and control commands; their modules import no kopf, so they start fast.
cli.add_command(status_command)
cli.add_command(canary_group)
cli.add_command(cert_group)


def main() -> None:
    """Console-script entry point for ``dabba`` and ``kubectl-dabba``."""
    prog = "kubectl dabba" if os.path.basename(sys.argv[0]).startswith("kubectl-") else "dabba"
    cli(prog_name=prog)
