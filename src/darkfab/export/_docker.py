"""`darkfab export docker`: a container build context that serves one model version over OIP v2.

The context holds a pinned slim Python base, the exact package versions (the model's own from its lineage),
darkfab's source, a store with only this model (its artifact and record, no data, no trials), a non-root
user, a HEALTHCHECK on ``/v2/health/ready`` and ``darkfab serve`` as the entrypoint. Docker is not needed to
write it; ``docker build`` turns it into an image.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..registry import Registry
from ..store import Store
from ._bundle import VersionBundle, pinned_requirements

SERVE_PORT = 8080
USER_ID = 10001
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def _python_tag(bundle: VersionBundle) -> str:
    import platform

    version = bundle.packages.get("python") or platform.python_version()
    return f"python:{version}-slim-bookworm"


def entrypoint(factory: str) -> list[str]:
    """The container's command: ``darkfab serve`` on every interface, the store inside the image."""
    return [
        "python",
        "-m",
        "darkfab",
        "serve",
        factory,
        "--store",
        "sqlite:///store/darkfab.db",
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVE_PORT),
        "--no-log",
    ]


def _dockerfile(bundle: VersionBundle) -> str:
    rec = bundle.record
    health = (
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{SERVE_PORT}/v2/health/ready', timeout=2)"
    )
    return f"""\
# darkfab model server: factory {bundle.factory}, version {rec.version} ({rec.trainer}),
# artifact sha256 {rec.artifact_hash}. Build: docker build -t {image_name(bundle)} .
FROM {_python_tag(bundle)}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PYTHONPATH=/app/lib
WORKDIR /app
COPY requirements.txt /app/requirements.txt
RUN pip install -r /app/requirements.txt
COPY lib /app/lib
COPY store /app/store
RUN useradd --system --uid {USER_ID} --no-create-home --home-dir /app darkfab && chown -R {USER_ID} /app/store
USER {USER_ID}
EXPOSE {SERVE_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
    CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT {json.dumps(entrypoint(bundle.factory))}
"""


def image_name(bundle: VersionBundle) -> str:
    """The image name the README and the KServe manifest use by default: ``darkfab-<factory>:v<version>``."""
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in bundle.factory.lower()).strip("._-")
    return f"darkfab-{name or 'model'}:v{bundle.version}"


def _write_store(bundle: VersionBundle, folder: Path, source: str) -> None:
    """A store holding only the factory's spec and this model, as version 1 and champion."""
    rec = bundle.record
    lineage: dict[str, Any] = {
        **rec.lineage,
        "parents": [],
        "exported_from": {"store": source, "version": rec.version, "parents": rec.lineage.get("parents", [])},
    }
    with Store(f"sqlite:///{folder / 'darkfab.db'}") as store:
        store.ensure_factory(bundle.factory, bundle.spec)
        Registry(store).register(
            bundle.factory,
            bundle.artifact,
            trial_id=None,
            trainer=rec.trainer,
            params=rec.params,
            metrics=rec.metrics,
            lineage=lineage,
            aliases=("champion",),
            reason=f"exported from {source}, version {rec.version}",
        )


def export_docker(bundle: VersionBundle, dest: str | Path, *, source: str) -> Path:
    """Write the build context to ``dest`` (a new or empty folder); nothing is left half-written.

    Args:
        bundle: the model version (:func:`load_version`).
        dest: the folder to create.
        source: the store it comes from, as shown to people (recorded in the context's lineage).
    """
    import darkfab

    out = Path(dest)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpecError(f"{out} exists and is not an empty folder; fix: give a new folder for the build context")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    work.chmod(0o755)
    try:
        (work / "requirements.txt").write_text(
            f"# exact versions for darkfab {darkfab.__version__}, factory {bundle.factory} v{bundle.version}\n"
            + "\n".join(pinned_requirements(bundle))
            + "\n"
        )
        shutil.copytree(Path(darkfab.__file__).parent, work / "lib" / "darkfab", ignore=_IGNORE)
        (work / "store").mkdir()
        _write_store(bundle, work / "store", source)
        (work / "Dockerfile").write_text(_dockerfile(bundle))
        (work / ".dockerignore").write_text("**/__pycache__\n")
        (work / "darkfab-export.json").write_text(
            json.dumps(
                {
                    "factory": bundle.factory,
                    "version": bundle.version,
                    "artifact_sha256": bundle.record.artifact_hash,
                    "trainer": bundle.record.trainer,
                    "image": image_name(bundle),
                    "port": SERVE_PORT,
                    "entrypoint": entrypoint(bundle.factory),
                },
                indent=2,
            )
            + "\n"
        )
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out
