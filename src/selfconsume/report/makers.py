"""Import every module that registers figure makers (order = order on the page)."""

from selfconsume.report import warmup  # noqa: F401  # isort: skip
from selfconsume.report import scatter  # noqa: F401  # isort: skip
from selfconsume.report import images  # noqa: F401  # isort: skip
from selfconsume.report import curation  # noqa: F401  # isort: skip
from selfconsume.report import stability_map  # noqa: F401  # isort: skip
from selfconsume.report import curves  # noqa: F401  # isort: skip
from selfconsume.report import sampling_bias  # noqa: F401  # isort: skip
from selfconsume.report import regression  # noqa: F401  # isort: skip
from selfconsume.report import cures  # noqa: F401  # isort: skip
from selfconsume.report import text  # noqa: F401  # isort: skip
