"""Fixture equivalence, text side: our tokenizer and LanguageEncoder against the official outputs.

For every fixture folder (config.yaml, state_dict.pt, inputs.pt, outputs.pt) the language encoder is
built from the fixture's config, its weights are loaded strictly from the fixture's state dict, and
every recorded text output (class tokens, class embeddings without templates, per-phrase and joint
phrase token embeddings) must match within 1e-4 max abs error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import recorded

from seem_annotator.model.config import load_config
from seem_annotator.model.language import LanguageEncoder, build_language_encoder

pytestmark = pytest.mark.fixture

ATOL = 1e-4
PREFIX = "sem_seg_head.predictor.lang_encoder."


def _load(path: Path):
    # Fixture files are trusted test data holding python containers (see each fixture's README).
    return torch.load(path, map_location="cpu", weights_only=False)


def _language_encoder(fixture: Path, device: torch.device) -> LanguageEncoder:
    cfg = load_config(fixture / "config.yaml")
    model = build_language_encoder(cfg).eval()
    state = torch.load(fixture / "state_dict.pt", map_location="cpu", weights_only=True)
    sub = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    model.load_state_dict(sub, strict=True)
    return model.to(device)


def _assert_tokens(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert torch.equal(ours["input_ids"].cpu(), ref["input_ids"])
    assert torch.equal(ours["attention_mask"].cpu(), ref["attention_mask"])


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.detach().cpu().float() - b.float()).abs().max())


def test_fixture_text_outputs(seem_fixture_dir: Path, fixture_device: torch.device) -> None:
    where = f"fixture {seem_fixture_dir.name}"
    text = recorded(_load(seem_fixture_dir / "outputs.pt"), "text", where)
    model = _language_encoder(seem_fixture_dir, fixture_device)
    class_names = list(text.get("class_names") or _load(seem_fixture_dir / "inputs.pt")["class_names"])

    assert _max_err(model.logit_scale, text["logit_scale"]) <= ATOL

    _assert_tokens(model.tokenize(class_names), text["class_tokens"])
    class_emb = model.get_text_embeddings(class_names, prompt=False)
    assert _max_err(class_emb, text["class_emb"]) <= ATOL
    assert torch.equal(model.default_text_embeddings, class_emb)

    for entry in recorded(text, "phrase_token_embeddings", f"{where} text"):
        out = model.get_text_token_embeddings([entry["phrase"]], norm=False)
        _assert_tokens(out["tokens"], entry["tokens"])
        assert _max_err(out["token_emb"], entry["token_emb"]) <= ATOL
        assert _max_err(out["class_emb"], entry["class_emb"]) <= ATOL

    joint = recorded(text, "joint_phrase_token_embeddings", f"{where} text")
    out = model.get_text_token_embeddings(list(joint["phrases"]), norm=False)
    _assert_tokens(out["tokens"], joint["tokens"])
    assert _max_err(out["token_emb"], joint["token_emb"]) <= ATOL
    assert _max_err(out["class_emb"], joint["class_emb"]) <= ATOL
