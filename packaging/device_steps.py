"""The device check's in-process model steps (see device_check.py): autocast agreement on the
fixtures, the worker's out-of-memory fallback on a real GPU, Whisper with a tiny random model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from device_check import Options, Skip

INTERACTIVE = ("interactive_r1", "interactive_r2", "interactive_multi_r1", "interactive_multi_r2")
IOU_MIN = 0.98  # issue 16: autocast masks agree with float32


# -- autocast ----------------------------------------------------------------------------------

def _load_fixture(folder: Path, device: str) -> tuple[Any, dict, dict]:
    import torch

    from seem_annotator.model.config import load_config
    from seem_annotator.model.seem import build_seem

    model = build_seem(load_config(folder / "config.yaml")).eval()
    model.load_state_dict(torch.load(folder / "state_dict.pt", weights_only=True, map_location="cpu"), strict=True)
    # Fixture files are trusted test data holding python containers (see each fixture's README).
    inputs = torch.load(folder / "inputs.pt", weights_only=False, map_location="cpu")
    outputs = torch.load(folder / "outputs.pt", weights_only=False, map_location="cpu")
    return model.to(device), inputs, outputs


def _prompt_masks(inputs: dict, entry: str) -> tuple[Any, Any] | None:
    """(n_obj, H, W) pos/neg masks of an interactive entry, as the fixture READMEs build them."""
    import torch

    pos = inputs["click_pos"] | inputs["stroke"] if entry.endswith("r2") else inputs["click_pos"]
    if "multi" not in entry:
        return pos[None], inputs["click_neg"][None]
    if "click_pos2" not in inputs:
        return None
    return torch.stack([pos, inputs["click_pos2"]]), torch.stack([inputs["click_neg"],
                                                                   torch.zeros_like(inputs["click_neg"])])


def _masks(model: Any, inputs: dict, outputs: dict) -> dict[str, Any]:
    """Every interactive and grounding answer of the fixture as bool masks at image resolution."""
    import torch

    from seem_annotator.model.postprocess import sem_seg_postprocess, upsample_masks
    from seem_annotator.model.sampler import TorchSampler

    x, hw = model.preprocess(inputs["image"])
    # encode_image's steps, to see the pixel decoder's own output dtype under autocast.
    dt = model.autocast_dtype
    with torch.autocast(model.device.type, dtype=dt or torch.float32, enabled=dt is not None):
        mask_features, _, multi_scale = model.sem_seg_head.pixel_decoder.forward_features(model.backbone(x))
    feats = model.features_from(mask_features, multi_scale, tuple(x.shape[-2:]), hw, cache_kv=True)
    h, w = hw

    def full(logits: torch.Tensor) -> torch.Tensor:  # (n, h4, w4) -> float32 logits (n, h, w)
        up = upsample_masks(logits[None].float(), feats.padded_hw)[0]
        return sem_seg_postprocess(up, (h, w), h, w).float().cpu()

    out: dict[str, Any] = {"_pixel_decoder_dtype": str(mask_features.dtype),
                           "_deformable": type(model.sem_seg_head.pixel_decoder).__name__}
    for entry in INTERACTIVE:
        ref = outputs.get(entry)
        masks = None if ref is None else _prompt_masks(inputs, entry)
        if masks is None:
            continue
        pos, neg = (model.pad_masks(m.to(model.device), feats) for m in masks)
        prev = ref.get("prev_mask_in")
        prev = None if prev is None else prev.transpose(0, 1).to(model.device)
        # Same seed for every dtype: the draws depend on the prompt masks only, not on precision.
        res = model.decode_spatial(feats, pos, neg, prev_mask=prev, sampler=TorchSampler(int(ref.get("seed", 0))),
                                   object_queries=False)
        out[entry] = full(res.mask_logits[:, 0])
    for k, ref in enumerate(outputs.get("grounding") or []):
        emb = model.language.get_text_token_embeddings(list(ref["texts"]), norm=False)
        res = model.decode_grounding(feats, token_embeddings=emb, object_queries=False)
        out[f"grounding{k}"] = full(res.mask_logits[:, 0])
    return out


def _iou(a: Any, b: Any) -> float:
    a, b = a > 0, b > 0
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def _deformable_dtypes(device: str, dtypes: tuple[str, ...], size: int) -> dict[str, str]:
    """Output dtype of SAM-ViT-B v1's deformable pixel decoder (random weights, random backbone
    features of a size x size input) under each autocast dtype: it must stay float32."""
    import torch

    from seem_annotator.model.backbone import build_backbone
    from seem_annotator.model.config import load_config
    from seem_annotator.model.pixel_decoder import build_pixel_decoder

    cfg = load_config("samvitb_v1")
    with torch.device("meta"):
        backbone = build_backbone(cfg)  # only its channel counts and strides are read
    torch.manual_seed(0)
    with torch.device(device):
        decoder = build_pixel_decoder(cfg, backbone).eval()
        feats = {k: torch.randn(1, c, size // backbone.out_strides[k], size // backbone.out_strides[k])
                 for k, c in backbone.out_channels.items()}
    out = {}
    for name in dtypes:
        with torch.autocast(torch.device(device).type, dtype=getattr(torch, name)):
            mask_features, _, multi_scale = decoder.forward_features(feats)
        out[name] = sorted({str(t.dtype) for t in (mask_features, *multi_scale)})
    return {k: ",".join(v) for k, v in out.items()}


def step_autocast(opts: Options) -> dict[str, Any]:
    import torch

    if not opts.fixtures:
        raise Skip("no fixture folder")
    dtypes = ("bfloat16", "float16")
    if opts.device == "cuda" and not torch.cuda.is_bf16_supported():
        dtypes = ("float16",)
    figs: dict[str, Any] = {"iou_min_required": IOU_MIN, "dtypes": list(dtypes), "fixtures": {}}
    failures: list[str] = []
    with torch.no_grad():
        for folder in opts.fixtures:
            model, inputs, outputs = _load_fixture(folder, opts.device)
            ref = _masks(model, inputs, outputs)
            per: dict[str, Any] = {}
            for name in dtypes:
                model.autocast_dtype = getattr(torch, name)
                try:
                    got = _masks(model, inputs, outputs)
                except Exception as exc:  # e.g. an op without a kernel for this dtype on this device
                    failures.append(f"{folder.name} {name}: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    model.autocast_dtype = None
                ious = {k: round(_iou(got[k], v), 5) for k, v in ref.items() if not k.startswith("_")}
                # Context for a low IoU: how far the logits moved, and how many float32 pixels sit
                # that close to the 0 threshold (random weights give flat, near-zero logits).
                diff = {k: (got[k] - v).abs().max().item() for k, v in ref.items() if not k.startswith("_")}
                near = {k: round(float((v.abs() <= diff[k]).float().mean()), 4) for k, v in ref.items()
                        if not k.startswith("_")}
                per[name] = {"iou": ious, "min_iou": min(ious.values()) if ious else None,
                             "max_abs_logit_diff": {k: round(d, 4) for k, d in diff.items()},
                             "fraction_within_diff_of_threshold": near,
                             "pixel_decoder_dtype": got["_pixel_decoder_dtype"]}
                bad = {k: v for k, v in ious.items() if v < IOU_MIN}
                if bad:
                    failures.append(f"{folder.name} {name}: IoU below {IOU_MIN}: {bad}")
                per[name]["pixel_decoder"] = got["_deformable"]
                if "Deform" in got["_deformable"] and got["_pixel_decoder_dtype"] != "torch.float32":
                    failures.append(f"{folder.name} {name}: pixel decoder ran in {got['_pixel_decoder_dtype']}")
            figs["fixtures"][folder.name] = per
            del model
        figs["deformable_pixel_decoder_output"] = deform = _deformable_dtypes(opts.device, dtypes, 256 if opts.quick else 512)
    failures += [f"deformable pixel decoder ran in {v} under {k} autocast" for k, v in deform.items()
                 if v != "torch.float32"]
    if failures:
        figs["failures"] = failures
    return figs


# -- out-of-memory fallback --------------------------------------------------------------------

def _peak(pred: Any, request: Any) -> int:
    """Peak reserved CUDA bytes of one fresh round (features not cached)."""
    import torch

    pred.cache.clear()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    pred.predict(request)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_reserved()
    pred.cache.clear()
    torch.cuda.empty_cache()
    return int(peak)


def _worker_round(pred: Any, request: Any, limit: int, timeout: float) -> dict[str, Any]:
    """Run `request` through an InferenceWorker with the GPU capped at `limit` bytes."""
    import torch

    from seem_annotator.engine.worker import InferenceWorker

    notices: list[str] = []
    results: list[Any] = []
    errors: list[BaseException] = []
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), 0)
    worker = InferenceWorker(pred, on_notice=notices.append)
    try:
        t0 = time.perf_counter()
        worker.submit(request, lambda _r, c: results.append(c), lambda _r, e: errors.append(e))
        worker.wait_idle(timeout)
        seconds = time.perf_counter() - t0
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        worker.shutdown(wait=True)
    backend = worker.backend
    return {"limit_mib": round(limit / 2**20), "notices": notices, "answered": bool(results),
            "errors": [f"{type(e).__name__}: {e}"[:300] for e in errors], "seconds": round(seconds, 2),
            "backend_device": getattr(backend, "device", None), "short_side": getattr(backend, "short_side", None)}


def step_oom_fallback(opts: Options) -> dict[str, Any]:
    if opts.device != "cuda":
        raise Skip("CUDA-only: the fallback is driven by a GPU memory cap (torch.cuda.set_per_process_memory_fraction)")
    import numpy as np
    import torch

    from seem_annotator.core.prompts import PointPrompt
    from seem_annotator.engine.predictor import SeemPredictor
    from seem_annotator.engine.types import DecodeRequest, ImageInput
    from seem_annotator.model.config import load_config
    from seem_annotator.model.seem import build_seem

    size = 1024
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size * 3 // 2, 3), dtype=np.uint8)
    image = ImageInput(key="oom", pixels=pixels, full_size=pixels.shape[:2])
    request = DecodeRequest(image, "o", 0, (PointPrompt(size * 0.75, size * 0.5),), seed=0)

    def predictor(short_side: int) -> SeemPredictor:
        with torch.device("cuda"):
            model = build_seem(load_config("focalt_v1")).eval()
        return SeemPredictor(model, name="seem:focalt_v1", short_side=short_side, cache_bytes=1 << 34)

    with torch.no_grad():
        pred = predictor(size)
        base = int(torch.cuda.memory_allocated())
        peak_full = _peak(pred, request)
        pred.short_side = size // 2
        peak_half = _peak(pred, request)
        figs: dict[str, Any] = {"model": "focalt_v1 (random weights)", "input_short_side": size,
                                "weights_mib": round(base / 2**20), "peak_full_mib": round(peak_full / 2**20),
                                "peak_half_mib": round(peak_half / 2**20)}
        failures = []
        if peak_half >= peak_full:
            raise RuntimeError(f"half input peaks no lower ({peak_half} >= {peak_full} bytes): no cap separates them")
        # A cap between the two peaks: the full input runs out, the half one fits.
        pred.short_side = size
        try:
            half = _worker_round(pred, request, (peak_half + peak_full) // 2, 120)
            figs["cap_between_peaks"] = half
            if not (half["answered"] and half["short_side"] == size // 2
                    and str(half["backend_device"]).startswith("cuda")
                    and any("half resolution" in n for n in half["notices"])):
                failures.append(f"half-resolution fallback: {half}")
        except Exception as exc:  # the second case still runs
            failures.append(f"half-resolution case: {type(exc).__name__}: {exc}")
        del pred
        torch.cuda.empty_cache()
        # A cap just above the weights: both sizes run out, the worker moves the model to the CPU.
        pred = predictor(size)
        try:
            cpu = _worker_round(pred, request, int(torch.cuda.memory_allocated()) + (peak_half - base) // 8, 240)
            figs["cap_below_half"] = cpu
            if not (cpu["answered"] and cpu["backend_device"] == "cpu" and any("CPU" in n for n in cpu["notices"])):
                failures.append(f"CPU fallback: {cpu}")
        except Exception as exc:
            failures.append(f"CPU-fallback case: {type(exc).__name__}: {exc}")
    if failures:
        figs["failures"] = failures
    return figs


# -- Whisper -----------------------------------------------------------------------------------

def step_whisper(opts: Options) -> dict[str, Any]:
    import numpy as np
    import torch

    try:
        from whisper.model import ModelDimensions, Whisper
    except ImportError as exc:
        raise Skip(f"openai-whisper is not installed ({exc})") from exc
    from seem_annotator.voice.transcribe import Transcriber, WhisperSettings

    # A random-weight multilingual Whisper, one layer per stack (as tests/voice_support.py builds
    # it): the positional embedding is filled (Whisper leaves it empty) and the special tokens'
    # embeddings zeroed, so greedy decoding picks text tokens and ends.
    torch.manual_seed(0)
    dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                n_text_ctx=32, n_text_state=64, n_text_head=2, n_text_layer=1)
    model = Whisper(ModelDimensions(**dims))
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        model.decoder.token_embedding.weight[50257:] = 0.0
    model = model.eval().to(opts.device)
    seen: set[str] = set()  # the audio encoder's output dtype: float16 is Whisper's fp16 path, measured
    model.encoder.register_forward_hook(lambda _m, _i, out: seen.add(str(out.dtype)))
    t = np.arange(16000 * 3) / 16000.0
    audio = (0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)  # a 3 s chirp
    tr = Transcriber(WhisperSettings(model="tiny", device=opts.device, language="en", temperature=(0.0,)),
                     model=model)
    runs = []
    for _ in range(3):  # the first includes CUDA kernel warm-up
        res = tr.transcribe(audio)
        runs.append(round(res.decode_seconds, 3))
    figs = {"device": res.device, "encoder_output_dtypes": sorted(seen), "decode_seconds": runs, "audio_seconds": res.audio_seconds,
            "text_chars": len(res.text), "model": "random tiny (1+1 layers, 64 wide)"}
    if opts.device == "cuda" and seen != {"torch.float16"}:
        figs["failures"] = [f"expected Whisper's fp16 path on CUDA, the encoder ran in {sorted(seen)}"]
    return figs
