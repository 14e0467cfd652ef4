"""Which Azure OpenAI base models can still be fine-tuned: Microsoft's retirement schedule as a table.

A fine-tuning job on a base model Azure has retired for training is refused by the service, after the
upload and the cost question; a model Azure has *deprecated* is refused for subscriptions that never
trained it (new customers). ``preflight`` asks this table first, so the run stops before anything is
sent, with the replacement to use, and warns when the end is near.

Source (read 2026-12-01): Microsoft Learn, "Model retirement schedule - Microsoft Foundry",
https://learn.microsoft.com/azure/foundry/openai/concepts/model-retirement-schedule (revision of
2026-09-02: table "Fine-tuned models"), with its include file in MicrosoftDocs/azure-ai-docs
``articles/foundry/openai/includes/concepts-model-retirement-schedule-content.md`` (revision of
2026-07-07), the lifecycle policy ``concepts-model-retirements-content.md`` (what Deprecated and Legacy
mean) and, for the models retired before 2025-06, the "Retired models" table of
https://learn.microsoft.com/azure/ai-foundry/openai/concepts/legacy-models.

What the sources say and what is assumed here:

- Fine-tuned models retire in two phases, *training* then *deployment*. The fine-tuning table gives
  gpt-4o (2024-08-06) and gpt-4o-mini (2024-07-18) "no earlier than 2027-04-01" for training and
  2027-10-01 for deployments, gpt-4.1 / -mini / -nano (2025-04-14) "no earlier than 2027-04-14" and
  2027-10-14, each "for existing customers only. Otherwise, training retirement occurs at base model
  retirement".
- gpt-4o-mini and gpt-4o are **Deprecated** as base models in both revisions; the lifecycle policy says
  a deprecated model is "no longer available to new customers" ("existing" is decided per subscription:
  has it ever deployed that model version). The 2026-07-07 revision dated their base retirement
  2026-10-01; the 2026-09-02 one moved it to 2027-04-14 and kept them Deprecated. Assumed here: from
  2026-10-01 a subscription that never used them cannot fine-tune them (``new_customers``), one that did
  can until 2027-04-01 (``existing_customers``). No replacement is listed for gpt-4o-mini any more; the
  2026-07-07 revision named gpt-4.1-mini, which is used.
- gpt-4.1, gpt-4.1-mini and gpt-4.1-nano are **Legacy** (still open to new customers) with base
  retirement 2027-04-14, which is also their training retirement for new customers. gpt-4.1-mini is the
  default base model: the smallest text model of the GA supervised fine-tuning list ("Fine-tuning
  models", same docs) that a new subscription can still train on 2026-12-01. No replacement is listed.
- babbage-002, davinci-002 and gpt-35-turbo-0613 are in the "Retired models" table (dates as printed
  there); their listed replacements are themselves closed to new customers, so gpt-4.1-mini is named.

Dates are UTC days; the schedule says retirements roll out region by region, so a job may be refused a
little before the date in some regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ftp.errors import UserError

WARN_DAYS = 90  # warn this long before the last day a base model takes new fine-tuning jobs
SETTING = "backends.azure.allow_deprecated_base"


@dataclass(frozen=True)
class Retirement:
    model: str  # as a fine-tuning job names it: model-version
    new_customers: date  # from this day, no fine-tuning jobs for a subscription that never used the model
    existing_customers: date  # from this day, none at all
    deployments: date | None  # from this day, deployments of models fine-tuned from it answer errors
    replacement: str | None


TABLE: dict[str, Retirement] = {r.model: r for r in (
    Retirement("gpt-4o-mini-2024-07-18", date(2026, 10, 1), date(2027, 4, 1), date(2027, 10, 1),
               "gpt-4.1-mini-2025-04-14"),
    Retirement("gpt-4o-2024-08-06", date(2026, 10, 1), date(2027, 4, 1), date(2027, 10, 1), "gpt-4.1-2025-04-14"),
    Retirement("gpt-4.1-2025-04-14", date(2027, 4, 14), date(2027, 4, 14), date(2027, 10, 14), None),
    Retirement("gpt-4.1-mini-2025-04-14", date(2027, 4, 14), date(2027, 4, 14), date(2027, 10, 14), None),
    Retirement("gpt-4.1-nano-2025-04-14", date(2027, 4, 14), date(2027, 4, 14), date(2027, 10, 14), None),
    Retirement("gpt-35-turbo-0613", date(2025, 2, 13), date(2025, 2, 13), date(2025, 2, 13),
               "gpt-4.1-mini-2025-04-14"),
    Retirement("babbage-002", date(2025, 1, 27), date(2025, 1, 27), date(2025, 1, 27), "gpt-4.1-mini-2025-04-14"),
    Retirement("davinci-002", date(2025, 1, 27), date(2025, 1, 27), date(2025, 1, 27), "gpt-4.1-mini-2025-04-14"),
)}


def lookup(model: str) -> Retirement | None:
    """The schedule's row for ``model``; a fine-tuned model given as the base (continued fine-tuning,
    ``gpt-4o-mini-2024-07-18.ft-...``) follows the model it was trained from."""
    key = model.strip().lower().split(".ft-", 1)[0]
    return TABLE.get(key)


def _use(row: Retirement) -> str:
    return f"use {row.replacement}" if row.replacement else "Azure lists no replacement; pick another base model"


def check_base(model: str, today: date | None = None, allow_deprecated: bool = False) -> list[str]:
    """Warnings for ``model`` as a fine-tuning base (empty: nothing known against it); a ``UserError``
    naming the replacement when Azure no longer trains it, for anyone or (``allow_deprecated`` off) for
    a subscription that never trained it before."""
    row = lookup(model)
    if row is None:
        return []
    today = today or date.today()
    if today >= row.existing_customers:
        raise UserError(f"model.base: {model} can no longer be fine-tuned on Azure (retired for training on "
                        f"{row.existing_customers.isoformat()}); {_use(row)}")
    if today >= row.new_customers and not allow_deprecated:
        raise UserError(f"model.base: {model} can no longer be fine-tuned on Azure by new customers (retired for "
                        f"training on {row.new_customers.isoformat()}; a subscription that trained it before may "
                        f"until {row.existing_customers.isoformat()} with {SETTING}: true); {_use(row)}")
    if today >= row.new_customers:
        return [f"model.base: {model} is deprecated on Azure: only subscriptions that trained it before may fine-tune "
                f"it, until {row.existing_customers.isoformat()} ({SETTING} is set); {_use(row)}"]
    if (row.new_customers - today).days <= WARN_DAYS:
        return [f"model.base: Azure stops fine-tuning {model} for new customers on {row.new_customers.isoformat()} "
                f"(its retirement schedule); models trained from it answer until "
                f"{(row.deployments or row.existing_customers).isoformat()}; "
                + (f"plan the move to {row.replacement}" if row.replacement else "Azure lists no replacement yet")]
    return []
