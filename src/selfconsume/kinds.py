"""Import every module that registers a kind, so the registries are complete."""

from selfconsume.data import gaussian as _data_gaussian  # noqa: F401
from selfconsume.metrics import gaussian as _metrics_gaussian  # noqa: F401
from selfconsume.models import gaussian as _models_gaussian  # noqa: F401
