"""The local deployer: a local version needs nothing provisioned (``ftp serve`` loads it from its
registered model), so it only names the backend; the core records its slot and traffic."""

from __future__ import annotations

from ftp import hookimpl
from ftp.types import DeployRequest, Provisioned, StepContext


class LocalDeployer:
    name = "local-records"

    def deploy(self, request: DeployRequest, ctx: StepContext) -> Provisioned:
        return Provisioned(backend="local")


@hookimpl
def ftp_deployer(backend: str) -> LocalDeployer | None:
    return LocalDeployer() if backend == "local" else None
