"""`knet as-binary BINARY ARGS...`: run the knet component standing in for one of kubeadm's
binaries (knet.proctitle.BINARIES), titled as `BINARY ARGS...`.

The kubelet runs a kubeadm image's container this way (knet.node.workloads), so the process a
node's `ps -ef` shows is the container's command line from its pod spec (`kube-apiserver
--advertise-address=…`, `/usr/local/bin/kube-proxy --config=…`); `knet up` runs each node's kubelet
as `/usr/bin/kubelet …` the same way. The component parses ARGS exactly as `knet COMMAND ARGS`
does, with BINARY's basename as its program name (`kube-apiserver --help`).
"""

from __future__ import annotations

import os

import click

from knet import proctitle

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command("as-binary", context_settings=_PASS_THROUGH)
@click.option("--image", default="", help="The container image BINARY comes from: its tag is the "
              "Kubernetes version the binary is (what kube-apiserver's /version reports).")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def as_binary(ctx: click.Context, image: str, argv: tuple[str, ...]) -> None:
    """Run the component that BINARY names, retitled `BINARY ARGS...`."""
    version = image_tag(image)
    if version:
        os.environ["KNET_KUBERNETES_VERSION"] = version
    command = proctitle.command_of(argv[0])
    if command is None:
        known = ", ".join(sorted(proctitle.BINARIES))
        raise click.UsageError(f"{argv[0]!r} is none of the binaries knet stands in for ({known})")
    group = ctx.find_root().command
    assert isinstance(group, click.Group)
    # Before the component starts any thread (each thread's name comes from its starter's).
    proctitle.set_title(list(argv))
    component = group.commands[command]
    component.main(list(argv[1:]), prog_name=os.path.basename(argv[0]),
                   help_option_names=ctx.find_root().help_option_names)


def image_tag(image: str) -> str:
    """`registry.k8s.io/kube-apiserver:v1.29.0` -> `v1.29.0` ("" without a tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def register(group: click.Group) -> None:
    group.add_command(as_binary)
