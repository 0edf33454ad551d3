"""Import every module that registers a kind, so the registries are complete."""

from selfconsume.data import files as _data_files  # noqa: F401
from selfconsume.data import gaussian as _data_gaussian  # noqa: F401
from selfconsume.data import toy2d as _data_toy2d  # noqa: F401
from selfconsume.metrics import gaussian as _metrics_gaussian  # noqa: F401
from selfconsume.metrics import sample_metrics as _metrics_sample_metrics  # noqa: F401
from selfconsume.metrics import transport as _metrics_transport  # noqa: F401
from selfconsume.models import ddpm as _models_ddpm  # noqa: F401
from selfconsume.models import flow as _models_flow  # noqa: F401
from selfconsume.models import gaussian as _models_gaussian  # noqa: F401
from selfconsume.models import gmm as _models_gmm  # noqa: F401
from selfconsume.models import kde as _models_kde  # noqa: F401
