"""Capabilities are declared (base classes and protocols of `models.base`) and checked at plan
time: image data needs an `ImageModel`, a `ShapedImageModel` is built with its image shape, and
whether a model trains on labels is found once (`Plan.conditional`), never looked up in the run."""

from __future__ import annotations

import pytest

from selfconsume.errors import ConfigError
from selfconsume.models.base import (
    MODELS,
    Conditional,
    ImageModel,
    NetworkModel,
    ShapedImageModel,
)
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.models.kde import KDE, KDEParams
from selfconsume.plan import build, resolve

DIGITS = {"kind": "digits", "n_real": 20, "n_test": 10}


def raw(model: dict, data: dict | None = None) -> dict:
    return {
        "name": "capabilities",
        "replicates": 2,
        "generations": 1,
        "data": data or {"kind": "eight_gaussians", "n_real": 20, "n_test": 10},
        "model": model,
        "metrics": [],
    }


@pytest.fixture
def plugin(monkeypatch):
    def register(kind: str, family: type, params: type) -> str:
        MODELS.kinds()  # every built-in module imported first: none registers into the copy
        monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
        MODELS.register(kind, params)(family)
        return kind

    return register


def test_image_data_needs_a_family_declared_an_image_model(plugin):
    class Flat(GaussianModel):
        """A Gaussian family that does not declare images."""

    class Declared(GaussianModel, ImageModel):
        """The same family, declared an image model."""

    with pytest.raises(ConfigError, match="^model.kind: family 'flat' cannot take images"):
        resolve(raw({"kind": plugin("flat", Flat, GaussianModelParams)}, DIGITS))
    cfg = resolve(raw({"kind": plugin("declared", Declared, GaussianModelParams)}, DIGITS))
    assert build(cfg).model.dim == 64


def test_a_shaped_image_model_is_built_with_the_images_shape(plugin):
    seen = {}

    class Shaped(KDE, ShapedImageModel):
        """A KDE that records the image shape it is built with."""

        def __init__(self, params, dim, replicates, streams, image_shape=None):
            seen["shape"] = image_shape
            super().__init__(params, dim, replicates, streams)

    build(resolve(raw({"kind": plugin("shaped", Shaped, KDEParams)}, DIGITS)))
    assert seen["shape"] == (1, 8, 8)


def test_whether_a_model_is_conditional_is_found_at_plan_time(plugin):
    class Labelled(GaussianModel):
        """Says conditional, but cannot draw prompts: not a Conditional family."""

        conditional = True

    assert not isinstance(Labelled, Conditional)
    assert (
        build(resolve(raw({"kind": plugin("labelled", Labelled, GaussianModelParams)}))).conditional
        is False
    )
    net = {"hidden": 8, "depth": 1, "train_steps": 1, "n_steps": 2, "conditional": True}
    conditional = build(resolve(raw({"kind": "ddpm", "params": net}, DIGITS)))
    assert conditional.conditional is True and isinstance(conditional.model, Conditional)
    plain = build(resolve(raw({"kind": "ddpm", "params": {**net, "conditional": False}}, DIGITS)))
    assert plain.conditional is False


def test_neon_finds_a_torch_family_by_its_declared_base():
    tiny = {"hidden": 8, "depth": 1, "train_steps": 1, "n_steps": 2}
    cfg = resolve(raw({"kind": "ddpm", "params": tiny}) | {"cures": {"neon": {"w": 0.5}}})
    assert isinstance(build(cfg).model, NetworkModel)
    with pytest.raises(ConfigError, match=r"^cures\.neon needs a family with generator weights"):
        resolve(raw({"kind": "kde"}) | {"cures": {"neon": {"w": 0.5}}})
