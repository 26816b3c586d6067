"""The no-lambda comparison runs end to end on generated data and reports what it computed."""
import numpy as np
import pytest

from refnet.reproduction.duque import expected_loss as cmp
from refnet.reproduction.results import load_results


@pytest.mark.slow
def test_comparison_on_synthetic_blobs(tmp_path):
    settings = cmp.ComparisonSettings(datasets=("synthetic",), baseline_epochs=2,
                                      finetune_epochs=1, n_levels=4, repetitions=2,
                                      ce_passes=3)
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
    assert cmp.plot(settings, tmp_path).exists()
    text = cmp.report_markdown(settings, tmp_path)
    for label in cmp.mode_labels(settings.variance).values():
        assert label in text
    assert "Winner per variance (computed)" in text
