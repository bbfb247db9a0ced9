"""The ``"predicted"`` cost model: static costs measured, latency looked up in a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from torch import nn

from iaprune.cost._base import COST_MODELS, CostModel, CostReport
from iaprune.cost._util import check_input_shape
from iaprune.cost.lut.table import LatencyTable
from iaprune.cost.measure import measure_cost
from iaprune.errors import IAPruneError

__all__ = ["PredictedCostModel", "predicted_cost"]


@COST_MODELS.register("predicted")
class PredictedCostModel(CostModel):
    """:func:`~iaprune.cost.measure_cost` static costs with ``latency_ms = table.predict(keep)``.

    ``keep=None`` is the unpruned model (the table's measured full latency);
    ``latency_spread_ms`` is ``None`` and ``latency_env`` is :meth:`LatencyTable.latency_env`
    (``"predicted": True``). Predictions take microseconds, so every search trial can have
    a latency even where timing each candidate would be too slow.

    Attributes:
        table: the latency table.
    """

    name = "predicted"
    has_latency = True
    uses_keep = True

    def __init__(self, table: LatencyTable) -> None:
        self.table = table

    def check_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``input_shape`` as a tuple if the table was measured for it.

        Raises:
            IAPruneError: the table was measured for another input shape.
        """
        shape = check_input_shape(input_shape)
        if list(shape) != list(self.table.meta.get("input_shape", [])):
            raise IAPruneError(
                f"latency table was measured for input shape "
                f"{self.table.meta.get('input_shape')}, not {list(shape)}"
            )
        return shape

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        keep: Mapping[str, int] | None = None,
    ) -> CostReport:
        """Static costs of ``model`` and the latency the table predicts for ``keep``."""
        static = measure_cost(model, self.check_shape(input_shape))
        return replace(
            static,
            latency_ms=self.table.predict(keep),
            latency_spread_ms=None,
            latency_env=self.table.latency_env(),
        )


def predicted_cost(table: LatencyTable, input_shape: Sequence[int]) -> PredictedCostModel:
    """A :class:`PredictedCostModel` of ``table``, checked for ``input_shape`` now.

    Raises:
        IAPruneError: ``input_shape`` is not the shape the table was measured for.
    """
    model = PredictedCostModel(table)
    model.check_shape(input_shape)
    return model
