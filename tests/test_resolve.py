"""The resolved config is the contract: bad input names its key, capabilities are checked before
anything is written, and nothing the user did not ask for changes a run's identity."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.errors import ConfigError
from selfconsume.plan import resolve

BASE = {"name": "r", "data": {"kind": "gaussian", "n_real": 10}, "model": {"kind": "gaussian"}}


def with_(path: str, value) -> dict:
    import copy

    from selfconsume.config import set_path

    raw = copy.deepcopy(BASE)
    set_path(raw, path, value)
    return raw


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("data.params.std", -1.0, "data.params.std"),
        ("data.params.std", float("nan"), "data.params.std"),
        ("data.params.std", float("inf"), "data.params.std"),
        ("data.params.dim", 100_000, "data.params.dim"),
        ("scheme", {"kind": "mix", "lam": float("inf")}, "scheme.params.lam"),
        ("scheme", {"kind": "mix", "lam": 1e308}, "scheme.params.lam"),
        ("scheme", {"kind": "mix", "lam": 0.5, "n_synthetic": 9}, "scheme.params.n_synthetic"),
        ("scheme", {"kind": "replace", "lam": 0.5}, "scheme.params.lam"),
        ("scheme", {"kind": "mix", "params": {"lam": -1}}, "scheme.params.lam"),
        ("scheme", {"kind": "mix", "params": {"lam": 1}, "lam": 2}, "scheme.lam"),
        ("scheme", {"kind": "sideways"}, "scheme.kind"),
        (
            "curation",
            {
                "kind": "bradley_terry",
                "beta": float("nan"),
                "reward": {"kind": "linear", "params": {"coef": [1.0]}},
            },
            "curation.params.beta",
        ),
        ("model", {"kind": "kde"}, None),
    ],
)
def test_bad_values_name_their_key(path, value, key):
    raw = with_(path, value)
    if key is None:  # a family without moments asked for gaussian_params names both kinds
        raw["metrics"] = ["gaussian_params"]
        key = "metrics: gaussian_params needs .*data.kind 'gaussian', model.kind 'kde'"
    with pytest.raises(ConfigError, match=key):
        resolve(raw)


def test_capability_mismatch_exits_2_with_one_line_and_writes_nothing(tmp_path):
    config = tmp_path / "kde.yaml"
    config.write_text(
        "name: kde\ndata: {kind: gaussian, n_real: 10}\nmodel: {kind: kde}\n"
        "metrics: [gaussian_params]\n"
    )
    store = tmp_path / "runs" / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(config), "--store", str(store)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gaussian_params" in lines[0] and "'kde'" in lines[0]
    assert not store.exists()


def test_yaml_aliases_are_refused(tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(
        "name: bomb\ndata: {kind: gaussian, n_real: 10}\nmodel: {kind: gaussian}\n"
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nquick: {b: [*a, *a, *a, *a]}\n"
    )
    result = CliRunner().invoke(
        app, ["run", str(config), "--quick", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "aliases" in result.stderr


def test_non_finite_values_never_share_a_run_id_with_null():
    assert resolve(with_("curation", None)).run_id == resolve(BASE).run_id
    inf_k = {
        "kind": "bradley_terry",
        "k": float("inf"),
        "reward": {"kind": "linear", "params": {"coef": [1.0]}},
    }
    raw = with_("curation", inf_k)
    raw["model"]["population"] = True
    with pytest.raises(ConfigError, match="curation"):  # the Gaussian has no exact curated update
        resolve(raw)
    from selfconsume.config import Config

    dumped = Config.model_validate(raw).model_dump_json()
    assert '"k":"Infinity"' in dumped.replace(" ", "")


def test_arms_of_a_sweep_get_their_own_streams_unless_common_random_numbers():
    from selfconsume.seeding import arm_key

    mle = with_("model.params.estimator", "mle")
    assert arm_key(resolve(BASE)) != arm_key(resolve(mle))
    assert arm_key(resolve(BASE)) == arm_key(resolve({**BASE, "generations": 3, "replicates": 7}))
    crn = [resolve({**raw, "common_random_numbers": True}) for raw in (BASE, mle)]
    assert arm_key(crn[0]) == arm_key(crn[1]) == 0


def test_a_resolved_config_survives_its_json_round_trip():
    from selfconsume.plan import from_json

    raw = {
        "name": "ddpm",
        "data": {"kind": "eight_gaussians", "n_real": 20},
        "model": {"kind": "ddpm", "params": {"n_steps": 20, "train_steps": 1}},
    }
    cfg = resolve(raw)  # ddim_steps resolves to min(50, n_steps), valid when read back
    assert cfg.model.params.ddim_steps == 20
    assert from_json(cfg.model_dump_json()).run_id == cfg.run_id
