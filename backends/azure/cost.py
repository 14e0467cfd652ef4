"""The cost guard: training tokens × epochs × the configured price, before anything is submitted.

Azure bills ``training tokens × epochs × price per token`` (failed jobs and queue time are free).
Tokens are counted with tiktoken's o200k_base when its file is cached here, else estimated the
cookbook way (the estimate says so). Prices come from ``backends.azure.prices`` and are the user's to
check: the Azure price page could not be verified when the defaults were written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftp.data.files import read_jsonl
from ftp.errors import StepFailed, UserError
from ftp.types import StepContext

from .settings import AzureSettings

EXAMPLE_TOKEN_CAP = 65_536  # tokens per training example for gpt-4o-mini / gpt-4.1-mini; longer ones are cut


@dataclass(frozen=True)
class CostEstimate:
    tokens: int
    epochs: int
    price_per_million: float | None
    currency: str
    exact_tokens: bool

    @property
    def billed_tokens(self) -> int:
        return self.tokens * self.epochs

    @property
    def cost(self) -> float | None:
        if self.price_per_million is None:
            return None
        return self.billed_tokens * self.price_per_million / 1_000_000

    def describe(self) -> str:
        how = "" if self.exact_tokens else " (estimated: tiktoken's o200k_base file is not cached here)"
        text = f"{self.tokens:,} training tokens{how} × {self.epochs} epochs = {self.billed_tokens:,} billed tokens"
        if self.cost is None:
            return text + "; no price for this model in backends.azure.prices, so no cost estimate"
        return (f"{text} × {self.price_per_million:g} {self.currency}/1M = about {self.cost:.2f} {self.currency} "
                "(prices from backends.azure.prices: yours to check against your Azure price sheet)")


def count_tokens(path: Path) -> tuple[int, bool]:
    """Training tokens of a JSONL file, and whether they were counted exactly."""
    from ftp.data.tokens import EstimateCounter

    from .tokens import tiktoken_counter

    counter = tiktoken_counter() or EstimateCounter()
    lengths = counter.count(read_jsonl(path))
    return sum(min(n, EXAMPLE_TOKEN_CAP) for n in lengths), bool(counter.exact)


def estimate(path: Path, epochs: int, model: str, settings: AzureSettings) -> CostEstimate:
    tokens, exact = count_tokens(path)
    return CostEstimate(tokens=tokens, epochs=epochs, price_per_million=settings.price_per_million(model),
                        currency=settings.currency, exact_tokens=exact)


def enforce_limit(est: CostEstimate, settings: AzureSettings) -> None:
    """Refuse to submit above ``max_cost``; without a price the limit cannot be checked, which is refused too."""
    if settings.max_cost is None:
        return
    if est.cost is None:
        raise UserError("backends.azure.max_cost is set but backends.azure.prices has no price for this model; "
                        "add one (USD per 1M training tokens) so the limit can be checked")
    if est.cost > settings.max_cost:
        raise UserError(f"backends.azure.max_cost: the job is estimated at {est.cost:.2f} {est.currency}, over the "
                        f"limit of {settings.max_cost:g}; use fewer epochs or examples, or raise max_cost")


def confirm_submission(ctx: StepContext, question: str) -> None:
    """Ask before paid work is submitted (``--yes`` answers); a no, or nobody to answer, stops the step."""
    if not ctx.confirm(question):
        raise StepFailed("train", "not submitted: the confirmation was declined or nobody could answer it; "
                         f"to submit, resume with ftp run --resume {ctx.run_id} --yes")
