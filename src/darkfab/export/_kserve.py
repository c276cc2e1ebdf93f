"""`darkfab export kserve`: a KServe ``InferenceService`` running the image of `darkfab export docker`.

The container speaks the Open Inference Protocol v2 over HTTP on port 8080; KServe's probes use its
``/v2/health/ready`` and ``/v2/health/live``.
"""

from __future__ import annotations

import re
from typing import Any

from ._bundle import VersionBundle
from ._docker import SERVE_PORT, USER_ID, image_name


def _dns_name(text: str) -> str:
    """A name KServe accepts (an RFC 1035 label: a letter first, at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:63].rstrip("-")


def kserve_manifest(bundle: VersionBundle, *, image: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """The manifest as a dict (``yaml.safe_dump`` it for ``kubectl apply -f``)."""
    rec = bundle.record
    probe = {"httpGet": {"path": "/v2/health/ready", "port": SERVE_PORT}, "periodSeconds": 10}
    metadata: dict[str, Any] = {
        "name": _dns_name(f"{bundle.factory}-v{rec.version}"),
        "labels": {"app.kubernetes.io/managed-by": "darkfab", "darkfab.io/factory": _dns_name(bundle.factory)},
        "annotations": {
            "darkfab.io/version": str(rec.version),
            "darkfab.io/artifact-sha256": rec.artifact_hash,
            "darkfab.io/trainer": rec.trainer,
            "darkfab.io/protocol": "v2",
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "predictor": {
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": image or image_name(bundle),
                        "ports": [{"containerPort": SERVE_PORT, "protocol": "TCP"}],
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "httpGet": {"path": "/v2/health/live", "port": SERVE_PORT}},
                        "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID},
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "512Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                ]
            }
        },
    }
