"""`knet lab list | start LAB | answer VALUE | check | hint | status | reset`: practice labs on a
knet cluster, checked against its live state (knet.labs)."""

from __future__ import annotations

import sys

import click
import yaml

from knet.cluster.config import DEFAULT_NAME

name_option = click.option("--name", default=DEFAULT_NAME, show_default=True, help="cluster name")


def _engine(name: str, *, need_cluster: bool = True):
    from knet.cluster.paths import ClusterPaths
    from knet.labs.access import KubectlCluster
    from knet.labs.catalog import load_labs
    from knet.labs.engine import Engine
    from knet.labs.state import StateFile

    paths = ClusterPaths.of(name)
    try:
        config = yaml.safe_load(paths.config_file.read_text()) or {}
    except FileNotFoundError:
        if need_cluster:
            from knet.cluster.paths import list_cluster_names, missing_cluster_message

            raise click.ClickException(missing_cluster_message(name, list_cluster_names())) from None
        config = {}
    dataplane = str(config.get("dataplane") or "real")
    cluster = KubectlCluster(name, paths.admin_kubeconfig, dataplane=dataplane)
    return Engine(cluster, StateFile(paths.root / "labs" / "state.json"), load_labs(),
                  real_dataplane=dataplane == "real")


def _emit(outcome) -> None:
    for line in outcome.lines:
        click.echo(line)
    if not outcome.ok:
        sys.exit(1)


def _run(name: str, action, *, need_cluster: bool = True) -> None:
    from knet.labs.access import LabClusterError
    from knet.labs.engine import LabError

    try:
        _emit(action(_engine(name, need_cluster=need_cluster)))
    except (LabError, LabClusterError, KeyError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


@click.group("lab")
def lab_group() -> None:
    """Practice labs on a knet cluster, checked against the live cluster.

    \b
    knet lab list                   the labs (* marks the running one)
    knet lab start LAB              set the lab up and show its first question
    knet lab answer VALUE           answer the current question (e.g. 10.244.0.0/16)
    knet lab check                  check every question against the cluster now
    knet lab hint                   the next hint for the current question
    knet lab status                 the questions and what is done
    knet lab reset                  undo what start did and forget the lab
    """


@lab_group.command("list")
@name_option
def list_command(name: str) -> None:
    """List the labs."""
    _run(name, lambda e: e.list(), need_cluster=False)


@lab_group.command("start")
@name_option
@click.argument("lab")
def start_command(name: str, lab: str) -> None:
    """Set up LAB on the cluster and show its first question."""

    def start(engine):
        playable = lab in engine.labs and (engine.real_dataplane or not engine.labs[lab].needs_real_dataplane)
        if playable and engine.state_file.load() is None:
            click.echo(f"Setting up lab {lab} (its objects, then waiting until they are ready) ...")
        return engine.start(lab)

    _run(name, start)


@lab_group.command("answer")
@name_option
@click.option("-q", "--question", default=None, help="the question's id (default: the current question)")
@click.argument("value")
def answer_command(name: str, question: str | None, value: str) -> None:
    """Answer the current question with VALUE; it is checked against the cluster at once."""
    _run(name, lambda e: e.answer(value, question))


@lab_group.command("check")
@name_option
def check_command(name: str) -> None:
    """Check every question against the live cluster; say what is still wrong (exit 1 then)."""
    _run(name, lambda e: e.check())


@lab_group.command("hint")
@name_option
def hint_command(name: str) -> None:
    """Show the next hint for the current question."""
    _run(name, lambda e: e.hint())


@lab_group.command("status")
@name_option
def status_command(name: str) -> None:
    """Show the running lab's questions and which are done."""
    _run(name, lambda e: e.status())


@lab_group.command("reset")
@name_option
def reset_command(name: str) -> None:
    """Undo what `knet lab start` did to the cluster and forget the lab's state."""
    _run(name, lambda e: e.reset())


def register(group: click.Group) -> None:
    group.add_command(lab_group)
