"""Keeps the server's own cloud credentials away from provider libraries in worker processes.

litellm (through boto3, google-auth, azure-identity...) signs requests with whatever it finds:
``AWS_*`` variables, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_*``, or the instance's role
from the metadata service. A worker runs users' generations, so at start it removes those
variables from its environment and turns the SDKs' metadata-service lookups off, unless the
operator keeps them (``WORKER_KEEP_CLOUD_CREDENTIALS``, needed only for litellm families listed
in ``LITELLM_AMBIENT_CREDENTIAL_PROVIDERS``).
"""

from __future__ import annotations

import logging
import os
from typing import MutableMapping

log = logging.getLogger(__name__)

# Variables whose name starts with one of these hold (or point at) cloud credentials.
CREDENTIAL_PREFIXES = (
    "AWS_", "AZURE_", "ARM_", "MSI_", "IDENTITY_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "GCE_",
    "VERTEX_", "VERTEXAI_", "OCI_", "WATSONX_", "IBM_", "DATABRICKS_", "SNOWFLAKE_",
    "ALIBABA_CLOUD_", "ALICLOUD_",
)
# Set after removal: the SDKs then skip the instance metadata service (no role credentials).
METADATA_OFF = {"AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "True"}


def strip_cloud_credentials(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove cloud credential variables from ``environ`` (default ``os.environ``), switch the
    metadata-service lookups off, and return the names removed (for the log; never values)."""
    environ = os.environ if environ is None else environ
    removed = sorted(name for name in environ if name.upper().startswith(CREDENTIAL_PREFIXES))
    for name in removed:
        del environ[name]
    environ.update(METADATA_OFF)
    if removed:
        log.info("removed cloud credential variables from the worker environment: %s", ", ".join(removed))
    return removed


def protect_worker(app) -> None:
    """Apply :func:`strip_cloud_credentials` unless ``WORKER_KEEP_CLOUD_CREDENTIALS`` is set."""
    if not app.config.get("WORKER_KEEP_CLOUD_CREDENTIALS"):
        strip_cloud_credentials()
