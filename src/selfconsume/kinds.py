"""Where each kind lives: role -> kind -> module. Registries import a kind's module only when the
kind is used, so a Gaussian run never imports torch and POT loads only for a metric that needs it.

A new kind is one line here plus its module (which registers it with the role's registry)."""

DATA_KINDS = {
    "gaussian": "selfconsume.data.gaussian",
    "discrete": "selfconsume.data.discrete",
    "file": "selfconsume.data.files",
    "regression": "selfconsume.data.regression",
    **dict.fromkeys(("markov_text", "stdlib_text", "text_file"), "selfconsume.data.text"),
    **dict.fromkeys(("digits", "mnist", "image_file"), "selfconsume.data.images"),
    **dict.fromkeys(
        ("eight_gaussians", "two_moons", "swiss_roll", "checkerboard", "rings"),
        "selfconsume.data.toy2d",
    ),
}

MODEL_KINDS = {
    "gaussian": "selfconsume.models.gaussian",
    "discrete": "selfconsume.models.discrete",
    "gmm": "selfconsume.models.gmm",
    "kde": "selfconsume.models.kde",
    "ddpm": "selfconsume.models.ddpm",
    "flow": "selfconsume.models.flow",
    "regression": "selfconsume.models.regression",
    "ngram": "selfconsume.models.ngram",
    "transformer": "selfconsume.models.transformer",
}

METRIC_KINDS = {
    "gaussian_params": "selfconsume.metrics.gaussian",
    "w2": "selfconsume.metrics.gaussian",
    "sliced_w2": "selfconsume.metrics.transport",
    "regression": "selfconsume.metrics.regression",
    **dict.fromkeys(("text", "p0_perplexity"), "selfconsume.metrics.text"),
    **dict.fromkeys(
        ("mmd", "energy", "modes", "prd", "density_coverage", "nll"),
        "selfconsume.metrics.sample_metrics",
    ),
    **dict.fromkeys(
        ("reward", "mass", "divergence", "entropy", "states_lost"), "selfconsume.metrics.curation"
    ),
    **dict.fromkeys(
        ("fd", "feature_prd", "fls", "classes", "memorization"), "selfconsume.metrics.features"
    ),
}

REWARD_KINDS = {
    "callable": "selfconsume.rewards.callable",
    "classifier_confidence": "selfconsume.rewards.classifier",
    **dict.fromkeys(
        ("table", "distance", "mode_preference", "linear", "log_density"), "selfconsume.rewards.toy"
    ),
    **dict.fromkeys(("lexicon", "char_class", "text_classifier"), "selfconsume.rewards.text"),
}

SELECTION_KINDS = {
    **dict.fromkeys(("bradley_terry", "top_fraction", "threshold"), "selfconsume.loop.curation"),
    **dict.fromkeys(("discriminator", "likelihood"), "selfconsume.loop.filters"),
    "verifier": "selfconsume.loop.verifier",
}
"""The selection kinds (curation.kind): rules by a reward, and reward-free kinds."""

SCHEME_KINDS = dict.fromkeys(
    ("replace", "mix", "accumulate", "accumulate_subsample", "fresh"), "selfconsume.loop.schemes"
)

CURE_KINDS = dict.fromkeys(("real_weight", "self_correction", "neon"), "selfconsume.loop.cures")
"""Interventions on the loop (the config's `cures:` block)."""
