"""The no-lambda comparison runs end to end on generated data and reports what it computed."""
import json

import numpy as np
import pytest

from refnet.regularizers import regularizer_preset
from refnet.reproduction.duque import expected_loss as cmp
from refnet.reproduction.duque.protocol import EQ7_PRESET
from refnet.reproduction.results import load_results


def test_sweep_lambda_comes_from_the_table_or_the_caller():
    settings = cmp.ComparisonSettings()
    for ds in settings.datasets:
        lam, source = settings.sweep_lambda(ds)
        assert lam == cmp.SWEEP_BEST_LAMBDA[ds][0] > 0 and "front.md" in source
    assert cmp.ComparisonSettings(eq7_sweep_lambda=0.05).sweep_lambda("mnist")[0] == 0.05
    with pytest.raises(ValueError, match="quickdraw"):
        settings.sweep_lambda("quickdraw")


@pytest.mark.slow
def test_comparison_on_synthetic_blobs(tmp_path):
    settings = cmp.ComparisonSettings(datasets=("synthetic",), baseline_epochs=2,
                                      finetune_epochs=1, n_levels=4, repetitions=2,
                                      ce_passes=3, eq7_sweep_lambda=0.05)
    cmp.compute(settings, tmp_path, tmp_path / "models", log=lambda *a: None)
    arrays, record = load_results(tmp_path, "expected_loss_synthetic")
    v = arrays["variances"]
    assert settings.variance in v and v.min() == pytest.approx(1e-3) and v.max() == 1.0
    for mode in cmp.MODES:
        assert arrays[mode].shape == (len(v), 2)
        assert np.all((arrays[mode] >= 0) & (arrays[mode] <= 1))
        assert record["models"][mode]["penalty_at_variance"] > 0
    # each fine-tuned model was trained with what its label says
    cfg = {m: record["models"][m]["train_config"] for m in cmp.MODES}
    assert cfg["expected_loss"]["regularizers"][0]["kind"] == "expected_loss"
    assert cfg["expected_loss"]["regularizers"][0]["noise"]["spec"]["add_unc"] == settings.variance
    assert cfg["noise_aware"]["noise"]["spec"]["add_unc"] == settings.variance
    assert cfg["eq7"]["regularizers"][0]["kind"] == "saturation"
    # Eq. 7 at the sweep's lambda: the same code set as "eq7", at the recorded lambda
    best = record["models"]["eq7_sweep_best"]
    assert best["eq7_lambda"] == 0.05 and "eq7_sweep_lambda" in best["eq7_lambda_source"]
    assert cfg["eq7_sweep_best"]["regularizers"] == json.loads(json.dumps([
        regularizer_preset(EQ7_PRESET["synthetic"], 0.05).as_dict()]))
    assert cfg["eq7_sweep_best"]["regularizers"] != cfg["eq7"]["regularizers"]
    assert cfg["eq7_sweep_best"]["epochs"] == cfg["eq7"]["epochs"] == settings.finetune_epochs
    assert not np.array_equal(arrays["eq7_sweep_best"], arrays["eq7"])
    assert cmp.plot(settings, tmp_path).exists()
    text = cmp.report_markdown(settings, tmp_path)
    for label in cmp.mode_labels(settings.variance, 0.05).values():
        assert label in text
    assert "sweep's best lambda 0.05" in text
    assert "Winner per variance (computed)" in text
