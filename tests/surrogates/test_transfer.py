"""Transfer beats training from scratch where it clearly should.

The case: a regressor of one property (conductivity at contrast 10) is trained on 200 labelled
images; a second, closely related property (conductivity at contrast 3) has only 12 labels. A
new head on the first regressor's trunk (frozen), or that trunk fine-tuned, must predict the
second property clearly better than the same network trained from scratch on the 12 labels:
the trunk already computes what conductivity depends on (phase fraction and connectivity),
which 12 images cannot teach a fresh network. This is cross-property transfer (Gupta et al.
2021); the same machinery transfers the GAN discriminator's trunk.
"""

from __future__ import annotations

import pytest

from mdesign.evaluators import effective_conductivity
from mdesign.surrogates import scratch_surrogate, transfer_surrogate
from mdesign.surrogates.study import regression_metrics
from tests.surrogates.conftest import ARCH, NET

SOURCE = NET.model_copy(update={"max_steps": 400, "patience_steps": 200})


@pytest.fixture(scope="module")
def c3(images):
    return effective_conductivity(images, conductivities=(1, 3), refinement=1)


@pytest.fixture(scope="module")
def source_model(images, c10):
    return scratch_surrogate(ARCH, config=SOURCE).fit(
        images[:200], c10[:200], seed=0, ensemble_size=1
    )


def test_cross_property_transfer_beats_scratch_on_12_labels(images, c3, source_model):
    train, test = slice(200, 212), slice(212, 240)
    x_te, y_te = images[test], c3[test]
    scores = {}
    for name, model in {
        "scratch": scratch_surrogate(ARCH, config=NET),
        "frozen": transfer_surrogate(source_model, mode="frozen", config=NET),
        "finetune": transfer_surrogate(source_model, mode="finetune", config=NET),
    }.items():
        model.fit(images[train], c3[train], seed=1, ensemble_size=1)
        scores[name] = regression_metrics(model.predict(x_te).mean, y_te)
    print({k: round(v["mae"], 4) for k, v in scores.items()})
    assert scores["frozen"]["mae"] < 0.5 * scores["scratch"]["mae"]
    assert scores["finetune"]["mae"] < 0.5 * scores["scratch"]["mae"]
    assert scores["frozen"]["r2"] > 0.8
