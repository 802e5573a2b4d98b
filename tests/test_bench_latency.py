"""`bench latency` on a tiny fixture config (random weights): JSON layout and sanity of figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import seem_fixture_dirs

from seem_annotator.cli.main import main


@pytest.mark.slow
def test_latency_json(tmp_path: Path):
    dirs = [d for d in seem_fixture_dirs() if "focalt" in d.name]
    if not dirs:
        pytest.skip("no Focal-T fixture config")
    out = tmp_path / "lat.json"
    code = main(["bench", "latency", "--config", str(dirs[0] / "config.yaml"), "--size", "96",
                 "--repeat", "2", "--warmup", "1", "--photo", "300", "--json", str(out)])
    assert code == 0
    res = json.loads(out.read_text())
    for key in ("encode_ms", "click_ms", "memory_update_ms", "cold_click_ms", "first_click_ms", "full_decoder_ms",
                "text_click_ms", "photo_click_ms"):
        assert set(res[key]) == {"p50", "p95"} and 0 < res[key]["p50"] <= res[key]["p95"]
    assert res["speedup"] == pytest.approx(res["full_decoder_ms"]["p50"] / res["click_ms"]["p50"])
    assert res["cold_speedup"] == pytest.approx(res["full_decoder_ms"]["p50"] / res["cold_click_ms"]["p50"])
    assert 0 <= res["memory_coverage"] <= 1
    assert min(res["size"]) == 96 and res["device"] == "cpu" and min(res["photo_size"]) == 300


def test_latency_rejects_tiny_size(tmp_path: Path):
    assert main(["bench", "latency", "--size", "4", "--json", str(tmp_path / "x.json")]) == 2
