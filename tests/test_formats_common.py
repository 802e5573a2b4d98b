"""Shared helpers for the format tests (a small on-disk dataset), plus tests of the format-common
pieces: atomic writes, staged folders, safe path resolution, JSON errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord
from seem_annotator.errors import FormatError, UserError
from seem_annotator.formats import atomic
from seem_annotator.formats.common import read_json, relative_posix, resolve_inside

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

# -- a small dataset on disk ---------------------------------------------------------------------


def blob(h: int, w: int, center: tuple[int, int], axes: tuple[int, int], angle: float = 0.0) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, center, axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


def ring(h: int, w: int) -> np.ndarray:
    """A disc with a hole (a donut)."""
    outer = blob(h, w, (w // 2, h // 2), (w // 4, h // 3))
    return outer & ~blob(h, w, (w // 2, h // 2), (w // 10, h // 8))


def two_parts(h: int, w: int) -> np.ndarray:
    return blob(h, w, (w // 5, h // 4), (w // 8, h // 6)) | blob(h, w, (4 * w // 5, 3 * h // 4), (w // 9, h // 7), 30)


def write_image(path: Path, w: int, h: int, seed: int = 0, exif_rotate: bool = False) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if exif_rotate:
        # stored transposed with orientation 6 (rotate 90 CW): the oriented size is (w, h)
        img = Image.fromarray(np.ascontiguousarray(arr.transpose(1, 0, 2)))
        exif = Image.Exif()
        exif[0x0112] = 6
        img.save(path, exif=exif.tobytes())
    else:
        img.save(path)


def make_dataset(root: Path) -> Dataset:
    """Three images (one in a sub-folder with a space in its name, one EXIF-rotated JPEG) and five
    objects: plain, with a hole, in two parts, a tiny one, and one with a score; label ids not
    contiguous."""
    specs = [("a.png", 96, 64, False), ("sub dir/b c.png", 80, 60, False), ("rot.jpg", 72, 56, True)]
    images = []
    for i, (name, w, h, rot) in enumerate(specs, 1):
        write_image(root / name, w, h, seed=i, exif_rotate=rot)
        images.append(ImageRecord(id=i, file_name=name, width=w, height=h))
    labels = [LabelRecord(id=3, name="cat", color=(200, 30, 30)), LabelRecord(id=7, name="dog", color=(30, 200, 30)),
              LabelRecord(id=9, name="unused", color=(1, 2, 3))]
    tiny = np.zeros((56, 72), bool)
    tiny[10:12, 20:23] = True
    objects = [
        (1, 3, blob(64, 96, (30, 30), (20, 12), 20), None),
        (1, 7, ring(64, 96), 0.75),
        (2, 3, two_parts(60, 80), None),
        (3, 7, tiny, None),
        (3, 3, blob(56, 72, (40, 30), (15, 20)), 0.5),
    ]
    anns = []
    for k, (image_id, label_id, mask, score) in enumerate(objects):
        order = sum(1 for a in anns if a.image_id == image_id)
        anns.append(AnnotationRecord(id=10 + k, image_id=image_id, label_id=label_id, rle=masks.encode(mask),
                                     score=score, order=order))
    return Dataset(images=images, labels=labels, annotations=anns, root=str(root))


def by_id(dataset: Dataset) -> dict[int, AnnotationRecord]:
    return {a.id: a for a in dataset.annotations}


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under folder (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- tests of the common pieces ------------------------------------------------------------------


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    atomic.write_json(target, {"a": 1})
    atomic.write_json(target, {"b": [1, 2, 3]})
    assert read_json(target, "test") == {"b": [1, 2, 3]}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.json"
    atomic.write_json(target, {"old": True})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(UserError, match="No space left"):
        atomic.write_json(target, {"new": True})
    monkeypatch.undo()
    assert read_json(target, "test") == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_atomic_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="JSON"):
        atomic.write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_staged_folder_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "export"
    with pytest.raises(RuntimeError):
        with atomic.StagedFolder(out) as stage:
            stage.write("a/1.txt", b"one")
            raise RuntimeError("conversion failed half way")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic.StagedFolder(out) as stage:
        stage.write("a/1.txt", b"one")
        stage.write("2.txt", b"two")
        written = stage.commit()
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["2.txt", "a/1.txt"]
    assert listing(out) == {"2.txt": b"two", "a/1.txt": b"one"}
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_resolve_inside_refuses_escapes(tmp_path: Path) -> None:
    full, rel = resolve_inside(tmp_path, "sub/../a b.jpg", "image 1")
    assert rel == "a b.jpg" and full == tmp_path / "a b.jpg"
    assert resolve_inside(tmp_path, "x\\y.png", "image")[1] == "x/y.png"
    for bad in ("../outside.jpg", "a/../../outside.jpg", "/etc/passwd", "C:/x.jpg"):
        with pytest.raises(FormatError, match="outside|absolute"):
            resolve_inside(tmp_path, bad, "image 2")
    with pytest.raises(FormatError, match="empty"):
        resolve_inside(tmp_path, "  ", "image 3")


def test_relative_posix() -> None:
    assert relative_posix(Path("/data/img/a b.jpg"), Path("/data/out")) == "../img/a b.jpg"


def test_read_json_errors(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"images": [1, 2')
    with pytest.raises(FormatError, match="not valid JSON.*truncated"):
        read_json(tmp_path / "t.json", "COCO file")
    (tmp_path / "e.json").write_text("")
    with pytest.raises(FormatError, match="empty"):
        read_json(tmp_path / "e.json", "COCO file")
    with pytest.raises(FormatError, match="cannot read"):
        read_json(tmp_path / "missing.json", "COCO file")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_atomic_writes_get_a_normal_files_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        new = atomic.write_bytes(tmp_path / "new.json", b"{}")
        assert new.stat().st_mode & 0o777 == 0o640  # 0666 & ~umask, not mkstemp's 0600
        with atomic.StagedFolder(tmp_path / "folder") as stage:
            stage.write("a.json", b"{}")
            staged = stage.commit()
        assert staged[0].stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    os.chmod(new, 0o604)  # the user's choice for an existing file survives overwriting it
    atomic.write_text(new, "[]")
    os.chmod(staged[0], 0o660)
    with atomic.StagedFolder(tmp_path / "folder") as stage:
        stage.write("a.json", b"[]")
        stage.commit()
    assert new.stat().st_mode & 0o777 == 0o604 and new.read_text() == "[]"
    assert staged[0].stat().st_mode & 0o777 == 0o660
