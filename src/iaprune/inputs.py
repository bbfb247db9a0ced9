"""A run's inputs: its data, its model recipe and an example input (:class:`RunInputs`).

They are built from a :class:`~iaprune.config.RunConfig`, checked before any work
(:meth:`RunInputs.check_model`: a forward pass on a data-shaped example, with the trained
weights it will start from) and, for a new run, copied into the run directory
(:meth:`RunInputs.adopt`), so a changed or missing external file cannot change the run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from iaprune.artefacts import adopt_checkpoint, finished_baseline
from iaprune.checks import check_forward, load_checkpoint, user_model_errors
from iaprune.config import RunConfig
from iaprune.data import DataBundle, create_dataset, make_loaders
from iaprune.data.file_index import INDEX_FILE
from iaprune.devices import resolve_device
from iaprune.model_source import ModelRecipe, resolve_model
from iaprune.rundir import RunDir
from iaprune.train.checkpoint import load_into


class RunInputs:
    """The dataset (splits and loaders), model recipe and example input of ``config``.

    Without ``recipe`` the model is ``config.model``, the caller's own choice unless
    ``own_model`` is False (named by a run directory: a factory then needs ``trust_code``).
    The global torch RNG is seeded with the run seed first. ``data_index``: a cached file
    listing (:mod:`iaprune.data.file_index`) to reuse while current. Training batches
    are pinned in memory on CUDA.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        recipe: ModelRecipe | None = None,
        trust_code: bool = False,
        own_model: bool = True,
        data_index: Path | None = None,
    ) -> None:
        self.model_name, self.dataset = config.model, config.dataset
        torch.manual_seed(config.seed)
        self.bundle: DataBundle = create_dataset(
            config.dataset,
            root=config.data_root,
            val_fraction=config.val_fraction,
            seed=config.seed,
            index_file=data_index,
            **config.dataset_options(),
        )
        self.loaders = make_loaders(
            self.bundle,
            config.finetune.batch_size,
            seed=config.seed,
            num_workers=config.data_workers,
            pin_memory=resolve_device(config.device).type == "cuda",
        )
        self.recipe = recipe or self._resolve_model(config, trust_code, own_model)
        self.input_shape = (self.bundle.in_channels, *self.bundle.input_size)
        self.example_input = torch.randn(
            1, *self.input_shape, generator=torch.Generator().manual_seed(config.seed)
        )

    def _resolve_model(self, config: RunConfig, trust_code: bool, own: bool) -> ModelRecipe:
        """The model recipe; a factory that raises becomes a one-line error."""
        with user_model_errors(config.model):
            return resolve_model(
                config.model,
                num_classes=self.bundle.num_classes,
                in_channels=self.bundle.in_channels,
                width_mult=config.width_mult,
                trust_code=trust_code,
                own=own,
            )

    def build_model(self) -> nn.Module:
        """A fresh unpruned model (user factories' exceptions become one-line errors)."""
        with user_model_errors(self.model_name):
            return self.recipe.build()

    def check_forward(self, model: nn.Module, *, weights: str = "") -> None:
        """One forward pass on the example input (:func:`iaprune.checks.check_forward`)."""
        classes = self.bundle.num_classes
        name, data = self.model_name, self.dataset
        check_forward(model, self.example_input, classes, name, data, weights=weights)

    def check_model(self, root: Path, *, resume: bool, checkpoint: str | None) -> nn.Module:
        """The image files, and the model's forward pass with the weights it starts from.

        Those are a resumed run's own finished baseline.pt, else ``checkpoint`` (if any).
        Returns the model (with those weights).
        """
        index = self.bundle.file_index
        if index is None or not index.checked:  # a run's cached listing was checked before
            self.bundle.check_files()
            if index is not None:
                index.mark_checked()
        model = self.build_model()
        self.check_forward(model)
        done = finished_baseline(root) if resume else None
        if done is not None:  # a resumed run's own baseline.pt, of this model's shapes
            load_into(model, done, root / "baseline.pt")
            self.check_forward(model, weights=str(root / "baseline.pt"))
        elif checkpoint:
            load_checkpoint(model, checkpoint)
            self.check_forward(model, weights=checkpoint)
        return model

    def save_index(self, run: RunDir) -> None:
        """Write the data's file listing into ``run`` when it was scanned or checked anew."""
        index = self.bundle.file_index
        if index is not None and index.changed:  # a listing the next process reuses
            run.write_bytes(INDEX_FILE, index.to_bytes())

    def adopt(self, run: RunDir, config: RunConfig) -> RunConfig:
        """Make a new run self-contained; returns ``config`` with its paths absolute.

        ``--checkpoint`` is checked against the model and stored as a finished
        ``baseline.pt``; a model file is copied in as ``model.pt``.
        """
        if config.checkpoint:
            model = load_checkpoint(self.build_model(), config.checkpoint)
            adopt_checkpoint(run, model, str(_absolute(config.checkpoint)))
        if self.recipe.kind == "file":
            run.copy_in(self.recipe.path, "model.pt")
            self.recipe = replace(self.recipe, target="model.pt", base=run.root)
        return replace(
            config,
            checkpoint=_absolute(config.checkpoint),
            data_root=_absolute(config.data_root),
            cost=replace(config.cost, table=_absolute(config.cost.table)),
        )


def _absolute(path: str | None) -> str | None:
    """``path`` made absolute (``None`` stays ``None``)."""
    return None if path is None else str(Path(path).expanduser().absolute())
