"""The model zoo: CNNs created by name with :func:`create_model`."""

from iaprune.models import resnet_cifar, resnet_imagenet, vgg  # noqa: F401  (register)
from iaprune.models._registry import (
    MODELS,
    create_model,
    list_models,
    register_model,
    scaled_channels,
)

__all__ = ["MODELS", "create_model", "list_models", "register_model", "scaled_channels"]
