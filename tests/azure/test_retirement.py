"""The retired base models: Microsoft's fine-tuning retirement schedule as ftp's table, refused in the
trainer's preflight (``ftp validate``, ``ftp run``) before anything is uploaded, with the replacement."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from ftp.backends.azure import retirement
from ftp.errors import UserError
from helpers import FAST, RELAXED

TODAY = date(2026, 12, 1)


def test_gpt_4o_mini_is_refused_with_the_replacement_named() -> None:
    with pytest.raises(UserError) as refused:
        retirement.check_base("gpt-4o-mini-2024-07-18", today=TODAY)
    assert str(refused.value) == (
        "model.base: gpt-4o-mini-2024-07-18 can no longer be fine-tuned on Azure by new customers (retired for training "
        "on 2026-10-01; a subscription that trained it before may until 2027-04-01 with "
        "backends.azure.allow_deprecated_base: true); use gpt-4.1-mini-2025-04-14")


def test_a_subscription_that_trained_it_before_may_until_the_last_day_then_nobody_may() -> None:
    warned = retirement.check_base("gpt-4o-mini-2024-07-18", today=TODAY, allow_deprecated=True)
    assert len(warned) == 1 and "only subscriptions that trained it before" in warned[0]
    assert "until 2027-04-01" in warned[0] and "use gpt-4.1-mini-2025-04-14" in warned[0]
    with pytest.raises(UserError, match=r"^model.base: gpt-4o-mini-2024-07-18 can no longer be fine-tuned on Azure "
                                        r"\(retired for training on 2027-04-01\); use gpt-4.1-mini-2025-04-14$"):
        retirement.check_base("gpt-4o-mini-2024-07-18", today=date(2027, 4, 1), allow_deprecated=True)
    before = retirement.check_base("gpt-4o-mini-2024-07-18", today=date(2026, 9, 30))  # the day before: a warning
    assert before == ["model.base: Azure stops fine-tuning gpt-4o-mini-2024-07-18 for new customers on 2026-10-01 (its "
                      "retirement schedule); models trained from it answer until 2027-10-01; plan the move to "
                      "gpt-4.1-mini-2025-04-14"]
    assert retirement.check_base("gpt-4o-mini-2024-07-18", today=date(2026, 6, 1)) == []  # months before: nothing


def test_continued_fine_tuning_follows_the_model_it_was_trained_from() -> None:
    with pytest.raises(UserError, match="gpt-4o-mini-2024-07-18.ft-0123abcd can no longer be fine-tuned"):
        retirement.check_base("gpt-4o-mini-2024-07-18.ft-0123abcd", today=TODAY)
    assert retirement.lookup("GPT-4O-2024-08-06") is not None and retirement.lookup("gpt-5-mini") is None


def test_the_default_is_open_to_new_customers_and_warned_about_before_its_end() -> None:
    assert retirement.check_base("gpt-4.1-mini-2025-04-14", today=TODAY) == []
    soon = retirement.check_base("gpt-4.1-mini-2025-04-14", today=date(2027, 2, 1))
    assert soon == ["model.base: Azure stops fine-tuning gpt-4.1-mini-2025-04-14 for new customers on 2027-04-14 (its "
                    "retirement schedule); models trained from it answer until 2027-10-14; Azure lists no replacement "
                    "yet"]
    with pytest.raises(UserError, match=r"retired for training on 2027-04-14\); Azure lists no replacement"):
        retirement.check_base("gpt-4.1-mini-2025-04-14", today=date(2027, 4, 14))


def test_models_retired_long_ago_point_at_a_model_that_still_trains() -> None:
    for model in ("babbage-002", "davinci-002", "gpt-35-turbo-0613"):
        with pytest.raises(UserError, match="use gpt-4.1-mini-2025-04-14$"):
            retirement.check_base(model, today=TODAY)
    for row in retirement.TABLE.values():
        assert row.new_customers <= row.existing_customers
        if row.replacement:
            assert retirement.check_base(row.replacement, today=TODAY) == []  # every replacement trains today


def test_the_examples_and_the_backend_default_name_a_model_that_trains(quickstart: Path) -> None:
    from ftp.backends.azure import DEFAULT_BASE

    assert DEFAULT_BASE in (quickstart / "pipeline.yaml").read_text()
    assert retirement.check_base(DEFAULT_BASE, today=TODAY) == []
    repo = Path(__file__).resolve().parents[2]
    for path in [*(repo / "examples").rglob("*.yaml"), *(repo / "docs").rglob("*.md"), repo / "README.md"]:
        text = path.read_text(encoding="utf-8")  # no file or page sets a base model Azure no longer trains
        settings = [line for line in text.splitlines() if "{base: gpt-4o" in line or "model.base: gpt-4o-mini-2024-07-18`." in line
                    or (path.suffix == ".yaml" and "base: gpt-4o" in line)]
        assert not settings, (path, settings)


def test_ftp_run_refuses_before_anything_is_sent(quickstart: Path, fake_azure: Any) -> None:
    for args in (("validate", "pipeline.yaml", "-b", "azure"), ("run", "pipeline.yaml", "-b", "azure", "--yes", *FAST,
                                                                   *RELAXED)):
        result = invoke(*args, "--set", "backends.azure.model.base=gpt-4o-mini-2024-07-18")
        assert result.exit_code == 2, result.output + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "gpt-4o-mini-2024-07-18 can no longer be fine-tuned on Azure" in lines[0]
        assert lines[0].endswith("use gpt-4.1-mini-2025-04-14")
    assert not fake_azure.calls  # no upload, no job, not even a token


def test_allow_deprecated_base_lets_an_existing_customer_train_it(quickstart: Path, fake_azure: Any) -> None:
    result = invoke("run", "pipeline.yaml", "-b", "azure", "--yes", "--steps", "validate,split,train", *FAST, *RELAXED,
                    "--set", "backends.azure.model.base=gpt-4o-mini-2024-07-18",
                    "--set", "backends.azure.allow_deprecated_base=true")
    assert result.exit_code == 0, result.output + result.stderr
    assert "gpt-4o-mini-2024-07-18 is deprecated on Azure" in " ".join((result.output + result.stderr).split())
    assert fake_azure.job_bodies[0]["model"] == "gpt-4o-mini-2024-07-18"
