"""`darkfab export mlflow|docker|kserve`: a registered model version to the tools people already run."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import Commands, FactoryOpt, JsonOpt, StoreOpt, err

if TYPE_CHECKING:
    from ..export import VersionBundle
    from ..store import Store

commands = Commands()
export = commands.group(
    "export", help="Export a registered model version: to MLflow, a container build context, KServe."
)

VersionArg = Annotated[str, typer.Argument(help="version number, or an alias such as champion")]


def _bundle(st: Store, factory: str | None, version: str) -> VersionBundle:
    from ..export import load_version
    from ..registry import parse_version_ref
    from ..runtime import resolve_factory

    return load_version(st, resolve_factory(st, factory), parse_version_ref(version))


@export.command("mlflow")
def export_mlflow_cmd(
    version: VersionArg,
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", help="MLflow tracking server, e.g. http://host:5000")],
    registered_name: Annotated[
        str | None, typer.Option("--registered-name", help="registered model name (default: the factory's name)")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment (default: the factory's name)")
    ] = None,
    factory: FactoryOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Log a version to MLflow (params, metrics with the sealed-test interval, lineage tags, a pyfunc model with
    its signature and pinned requirements) and register it with the same aliases."""
    from ..export import export_mlflow
    from ..store import Store

    with Store(store) as st:
        bundle = _bundle(st, factory, version)
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints links to its UI; stdout carries only the JSON
        done = export_mlflow(bundle, tracking_uri=tracking_uri, registered_name=registered_name, experiment=experiment)
    if as_json:
        sys.stdout.write(json.dumps(done.as_json(), indent=2) + "\n")
        return
    aliases = f" with alias {', '.join(done.aliases)}" if done.aliases else ""
    err.print(
        f"{bundle.factory} v{bundle.version} -> MLflow run {done.run_id}; registered as {done.registered_name} "
        f"version {done.registered_version}{aliases}",
        highlight=False,
    )


@export.command("docker")
def export_docker_cmd(
    version: VersionArg,
    dest: Annotated[Path, typer.Argument(help="a new folder for the build context")],
    factory: FactoryOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a container build context serving the version over OIP v2 (`docker build -t NAME DIR`)."""
    from ..export import export_docker, image_name
    from ..store import Store

    with Store(store) as st:
        bundle = _bundle(st, factory, version)
        source = st.url
    out = export_docker(bundle, dest, source=source)
    if as_json:
        sys.stdout.write(json.dumps({"context": str(out), "image": image_name(bundle)}, indent=2) + "\n")
        return
    err.print(f"build context in {out}; build it with: docker build -t {image_name(bundle)} {out}", highlight=False)


@export.command("kserve")
def export_kserve_cmd(
    version: VersionArg,
    image: Annotated[
        str | None, typer.Option("--image", help="the image built from `darkfab export docker` (with its registry)")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Kubernetes namespace")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the manifest here, not to stdout")
    ] = None,
    factory: FactoryOpt = None,
    store: StoreOpt = None,
) -> None:
    """Print a KServe InferenceService manifest (OIP v2) running the version's image (`kubectl apply -f`)."""
    import yaml

    from ..export import kserve_manifest
    from ..store import Store

    with Store(store) as st:
        bundle = _bundle(st, factory, version)
    text = yaml.safe_dump(kserve_manifest(bundle, image=image, namespace=namespace), sort_keys=False)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"manifest in {output}; apply it with: kubectl apply -f {output}", highlight=False)
