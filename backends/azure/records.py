"""Azure deployments in the local deployment records (``deploy.store``), beside the blue-green slots.

The slots and weights are the local deployer's (the same table, the same rules); this adds which
Azure deployment serves each version, so a client routing by weight knows the URL to call.
"""

from __future__ import annotations

from pathlib import Path

from ftp.plugins.deploy_local import LocalDeployer
from ftp.sqlite_store import connect
from ftp.types import Deployment, DeployRequest, StepContext

from .deploy import AzureDeployment

SCHEMA = """
CREATE TABLE IF NOT EXISTS azure_deployments (
    name TEXT NOT NULL, version INTEGER NOT NULL, deployment TEXT NOT NULL, model TEXT NOT NULL,
    sku TEXT NOT NULL, capacity INTEGER NOT NULL, endpoint TEXT NOT NULL, run_id TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (name, version)
);
"""


def record(request: DeployRequest, ctx: StepContext, made: AzureDeployment) -> Deployment:
    slots = LocalDeployer().deploy(request, ctx)
    with connect(Path(request.store), SCHEMA) as db:
        db.execute("INSERT OR REPLACE INTO azure_deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (request.version.name, request.version.version, made.name, made.model, made.sku, made.capacity,
                    made.endpoint, ctx.run_id, slots.created_at))
    return slots.model_copy(update={"backend": "azure", "endpoint": made.endpoint})
