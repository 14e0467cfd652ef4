"""The pipeline's deploy step: provision, smoke-test the new version through its serving engine before it
gets any traffic (a failure records nothing), then record its slot, weights and mirror (the deployer's
own split first) and move ``deploy.alias`` when it ends with all the traffic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftp.errors import StepFailed
from ftp.types import DeployRequest, ModelVersion, ServeContext, StepContext

if TYPE_CHECKING:
    from ftp.config.settings import PipelineSettings
    from ftp.hooks import Hooks


def deploy_step(hooks: "Hooks", s: "PipelineSettings", backend: str, backend_settings: dict[str, Any],
                ctx: StepContext, version: ModelVersion, test: Path | None, train: Path) -> tuple[dict[str, Any], str]:
    from ftp.deploy import smoke, traffic

    d = s.deploy
    traffic_new, mirror = traffic.deploy_weights(d)
    request = DeployRequest(version=version, strategy=d.strategy, traffic_new=traffic_new, store=d.store,
                            backend_settings=backend_settings)
    deployer = hooks.deployer(backend)
    provisioned = deployer.deploy(request, ctx)

    def engine() -> Any:
        return hooks.serving_engine(provisioned.backend, ServeContext(serve=s.serve.model_dump(mode="json"),
                                                                      backend_settings=backend_settings))

    report = smoke.before_traffic(engine, version, provisioned, s, test, train)
    if isinstance(report, str) and d.smoke_test:  # no serving engine for the backend here
        ctx.reporter.event("warning", message=f"deploy: smoke test skipped: {report}")
    elif not isinstance(report, str) and not report.passed:
        raise StepFailed("deploy", f"smoke test failed, no traffic given: {report.summary} "
                                   "(deploy.smoke_test: 0 turns it off)")
    registry = hooks.model_registry(s.registration.registry, s.registration.location()) if d.alias else None
    deployment, outcome, said = traffic.deploy(request, provisioned, ctx.run_id, mirror=mirror, alias=d.alias,
                                               registry=registry, apply=getattr(deployer, "apply_traffic", None))
    return ({**deployment.model_dump(mode="json"), "mirror": outcome.after.mirror,
             "smoke_test": report if isinstance(report, str) else report.as_json()},
            traffic.deploy_summary(deployment, outcome, said, report))
