"""Import every module that registers a kind, so the registries are complete."""

from selfconsume.data import discrete as _data_discrete  # noqa: F401
from selfconsume.data import files as _data_files  # noqa: F401
from selfconsume.data import gaussian as _data_gaussian  # noqa: F401
from selfconsume.data import toy2d as _data_toy2d  # noqa: F401
from selfconsume.metrics import curation as _metrics_curation  # noqa: F401
from selfconsume.metrics import gaussian as _metrics_gaussian  # noqa: F401
from selfconsume.metrics import sample_metrics as _metrics_sample_metrics  # noqa: F401
from selfconsume.metrics import transport as _metrics_transport  # noqa: F401
from selfconsume.models import ddpm as _models_ddpm  # noqa: F401
from selfconsume.models import discrete as _models_discrete  # noqa: F401
from selfconsume.models import flow as _models_flow  # noqa: F401
from selfconsume.models import gaussian as _models_gaussian  # noqa: F401
from selfconsume.models import gmm as _models_gmm  # noqa: F401
from selfconsume.models import kde as _models_kde  # noqa: F401
from selfconsume.rewards import callable as _rewards_callable  # noqa: F401
from selfconsume.rewards import classifier as _rewards_classifier  # noqa: F401
from selfconsume.rewards import toy as _rewards_toy  # noqa: F401
