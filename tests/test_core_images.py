"""Image reading edge cases, all generated in tmp_path: EXIF orientation, pixel formats, damaged files,
a 20000 x 15000 JPEG read as a proxy, and a folder scan with one bad file."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from seem_annotator.core import images as imgio
from seem_annotator.core.project import Project
from seem_annotator.errors import ImageReadError


def gradient(h: int = 30, w: int = 20) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)


def exif_jpeg(path, orientation: int, arr: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif_jpeg(path, orientation, gradient())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    size = imgio.image_size(path)
    assert (size.height, size.width) == expected.shape[:2]
    if orientation in (5, 6, 7, 8):
        assert (size.width, size.height) == (30, 20)  # width and height swap
    np.testing.assert_array_equal(imgio.load_image(path), expected)
    proxy = imgio.load_for_model(path, max_side=15)
    assert proxy.full_size == expected.shape[:2] and max(proxy.pixels.shape[:2]) == 15


def test_orientation_sizes_in_project(tmp_path):
    for o in (6, 8):
        exif_jpeg(tmp_path / f"o{o}.jpg", o, gradient(30, 20))
    with Project.create(tmp_path) as project:
        assert [(i.width, i.height) for i in project.images()] == [(30, 20), (30, 20)]


@pytest.mark.parametrize("kind", ["L", "LA", "RGBA", "P", "1", "CMYK-jpeg", "I16-png", "I16-tiff",
                                  "rgb16-png", "rgb16-tiff"])
def test_pixel_formats_give_rgb8(tmp_path, kind):
    base = gradient(24, 32)
    gray16 = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 85)
    if kind == "CMYK-jpeg":
        path = tmp_path / "c.jpg"
        Image.fromarray(base).convert("CMYK").save(path, quality=95)
    elif kind == "I16-png":
        path = tmp_path / "g16.png"
        Image.fromarray(gray16).save(path)
    elif kind == "I16-tiff":
        path = tmp_path / "g16.tif"
        Image.fromarray(gray16).save(path)
    elif kind in ("rgb16-png", "rgb16-tiff"):
        path = tmp_path / ("c16.png" if kind == "rgb16-png" else "c16.tif")
        rgb16 = base.astype(np.uint16) * 257
        assert cv2.imwrite(str(path), rgb16[:, :, ::-1].copy())
    else:
        path = tmp_path / f"{kind}.png"
        Image.fromarray(base).convert(kind).save(path)
    arr = imgio.load_image(path)
    assert arr.shape == (24, 32, 3) and arr.dtype == np.uint8
    if kind.startswith("I16"):
        # 16-bit values scale to 8 bits (not clipped to white).
        np.testing.assert_allclose(arr[..., 0], gray16 / 257.0, atol=1)
        assert (arr[..., 0] == arr[..., 1]).all()
    elif kind.startswith("rgb16"):
        np.testing.assert_allclose(arr.astype(int), base.astype(int), atol=1)
    elif kind in ("RGBA",):
        np.testing.assert_array_equal(arr, base)  # alpha dropped, colour kept
    elif kind == "CMYK-jpeg":
        assert np.abs(arr.astype(int) - base.astype(int)).mean() < 8
    assert imgio.image_size(path) == (32, 24)


def test_damaged_files_raise_clear_errors(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(gradient(200, 200)).save(good, quality=90)
    data = good.read_bytes()
    cases = {
        "empty.jpg": (b"", "empty"),
        "text.jpg": (b"this is not an image\n" * 10, "not an image"),
        "trunc.jpg": (data[: len(data) // 2], "truncated|damaged|decoded"),
        "missing.jpg": (None, "does not exist"),
    }
    png = tmp_path / "good.png"
    Image.fromarray(gradient(200, 200)).save(png)
    cases["trunc.png"] = (png.read_bytes()[: png.stat().st_size // 2], "truncated|damaged|decoded")
    for name, (payload, message) in cases.items():
        path = tmp_path / name
        if payload is not None:
            path.write_bytes(payload)
        with pytest.raises(ImageReadError, match=message):
            imgio.load_image(path)
        scan = imgio.probe(tmp_path, name)
        assert not scan.readable and scan.error


def test_sha256_streamed(tmp_path):
    path = tmp_path / "x.bin"
    payload = bytes(range(256)) * 9000
    path.write_bytes(payload)
    assert imgio.file_sha256(path, chunk_size=1000) == hashlib.sha256(payload).hexdigest()


def test_folder_with_bad_file_still_loads(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "ok1.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(gradient()).save(tmp_path / "sub" / "ok2.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("ignored")
    calls = []
    with Project.create(tmp_path, progress=lambda done, total: calls.append((done, total))) as project:
        assert calls == [(1, 3), (2, 3), (3, 3)]
        images = project.images()
        assert [i.file_name for i in images] == ["broken.jpg", "ok1.png", "sub/ok2.jpg"]
        assert [i.readable for i in images] == [False, True, True]
        assert "not an image" in images[0].error
        assert project.info()["unreadable"] == 1
        assert project.load_image(images[1].id).shape == (30, 20, 3)
        # Fix the file: a rescan recovers it, a new file is added.
        Image.fromarray(gradient()).save(tmp_path / "broken.jpg")
        Image.fromarray(gradient()).save(tmp_path / "new.png")
        summary = project.rescan()
        assert summary["added"] == 1 and summary["recovered"] == 1
        assert all(i.readable for i in project.images())


def test_rescan_notices_changed_files_and_never_resizes_under_annotations(tmp_path, monkeypatch):
    import os

    from seem_annotator.core import masks

    def save(name: str, pixels: np.ndarray, mtime_ns: int) -> None:
        Image.fromarray(pixels).save(tmp_path / name)
        os.utime(tmp_path / name, ns=(mtime_ns, mtime_ns))

    save("a.png", gradient(), 10**18)
    save("b.png", gradient(), 10**18)
    original = (tmp_path / "a.png").read_bytes()
    with Project.create(tmp_path) as project:
        a, b = project.image_by_name("a.png"), project.image_by_name("b.png")
        session = project.start_session(a.id)
        mask = np.zeros((30, 20), bool)
        mask[5:15, 5:10] = True
        project.add_round(session.id, (), "test", masks.encode(mask), [("thing", 1.0)], 1.0)
        project.accept_session(session.id, project.ensure_label("thing").id)
        probed: list[str] = []
        real_probe = imgio.probe
        monkeypatch.setattr(imgio, "probe", lambda root, name: probed.append(name) or real_probe(root, name))

        # Nothing changed: nothing is re-read.
        assert project.rescan() == {"added": 0, "recovered": 0, "changed": 0, "resized": 0, "missing": 0,
                                    "unreadable": 0}
        assert probed == []
        # Touched only: re-read, the same hash, nothing to report.
        os.utime(tmp_path / "b.png", ns=(2 * 10**18, 2 * 10**18))
        assert project.rescan()["changed"] == 0 and probed == ["b.png"]
        # New pixels, same size: a new hash; the annotation stays.
        save("a.png", 255 - gradient(), 3 * 10**18)
        summary = project.rescan()
        assert summary["changed"] == 1 and project.image(a.id).readable
        assert project.image(a.id).sha256 == imgio.file_sha256(tmp_path / "a.png") != a.sha256
        assert len(project.annotations(a.id)) == 1
        # Another size under an annotation: set aside with the reason, its size and annotation kept.
        save("a.png", gradient(40, 60), 4 * 10**18)
        summary = project.rescan()
        assert summary["resized"] == 1 and summary["unreadable"] == 1
        moved = project.image(a.id)
        assert not moved.readable and "60x40" in moved.error and "20x30" in moved.error
        assert (moved.width, moved.height) == (20, 30) and len(project.annotations(a.id)) == 1
        # Another size with nothing drawn on it: simply taken.
        save("b.png", gradient(40, 60), 5 * 10**18)
        assert project.rescan()["changed"] == 1
        assert (project.image(b.id).width, project.image(b.id).height) == (60, 40)
        # The original back: recovered.
        (tmp_path / "a.png").write_bytes(original)
        summary = project.rescan()
        assert summary["recovered"] == 1 and project.image(a.id).readable
        assert (project.image(a.id).width, project.image(a.id).height) == (20, 30)
        # Rows from before sizes and times were recorded: recorded now, without re-reading files.
        with project._store.transaction():
            project._store.execute("UPDATE images SET file_size = NULL, mtime_ns = NULL")
        probed.clear()
        assert project.rescan()["changed"] == 0 and probed == []
        assert project._store.one("SELECT COUNT(*) FROM images WHERE file_size IS NULL")[0] == 0


def _huge_gray_jpeg(path, width: int, height: int, orientation: int = 1) -> None:
    """A valid baseline JPEG of uniform mid-grey, written without ever holding the pixels: with
    one-symbol Huffman tables each 8x8 block is 2 zero bits (DC difference 0, end of block)."""
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", marker, len(payload) + 2) + payload

    exif = Image.Exif()
    exif[0x0112] = orientation
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8")
        fh.write(segment(0xFFE1, exif.tobytes()))
        fh.write(segment(0xFFDB, b"\x00" + bytes([1] * 64)))
        fh.write(segment(0xFFC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"))
        fh.write(segment(0xFFC4, b"\x00" + one_symbol))
        fh.write(segment(0xFFC4, b"\x10" + one_symbol))
        fh.write(segment(0xFFDA, b"\x01\x01\x00\x00\x3f\x00"))
        fh.write(bytes((blocks * 2 + 7) // 8))
        fh.write(b"\xff\xd9")


def test_huge_jpeg_loads_as_bounded_proxy(tmp_path):
    path = tmp_path / "huge.jpg"
    _huge_gray_jpeg(path, 20000, 15000, orientation=6)
    assert imgio.image_size(path) == (15000, 20000)  # header only; oriented
    proxy = imgio.load_for_model(path, max_side=1024)
    assert proxy.full_size == (20000, 15000)
    assert proxy.pixels.shape == (1024, 768, 3) and proxy.pixels.dtype == np.uint8
    assert abs(int(proxy.pixels.mean()) - 128) <= 2
    with pytest.raises(ImageReadError, match="too large to load at full resolution"):
        imgio.load_image(path)
    scan = imgio.probe(tmp_path, "huge.jpg")
    assert scan.readable and (scan.width, scan.height) == (15000, 20000)


def test_huge_jpeg_proxy_memory_is_bounded(tmp_path):
    # In a fresh process so the peak RSS is this load's alone (a full decode would need 900 MB).
    path = tmp_path / "huge.jpg"
    _huge_gray_jpeg(path, 20000, 15000)
    # VmHWM (Linux) is the peak of this process image alone; ru_maxrss can carry the forking
    # parent's peak (a pytest process with models loaded) across exec.
    code = (
        "import resource, sys\n"
        "from seem_annotator.core.images import load_for_model\n"
        "p = load_for_model(sys.argv[1], 1024)\n"
        "try:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "    peak = int(hwm.split()[1]) // 1024\n"
        "except OSError:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "print(p.pixels.shape, peak)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         timeout=120, check=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out[:3] == ["(768,", "1024,", "3)"]
    assert int(out[3]) < 400, f"peak RSS {out[3]} MB"


def test_non_jpeg_proxy_downscales(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.tile(gradient(50, 400), (1, 1, 1))).save(path)
    proxy = imgio.load_for_model(path, max_side=100)
    assert proxy.pixels.shape == (12, 100, 3) or proxy.pixels.shape == (13, 100, 3)
    assert proxy.full_size == (50, 400) and proxy.scale == pytest.approx(proxy.pixels.shape[0] / 50)


def test_mpo_phone_photo_uses_jpeg_path(tmp_path):
    path = tmp_path / "phone.jpg"
    frames = [Image.fromarray(gradient(60, 80)), Image.fromarray(gradient(60, 80)[::-1].copy())]
    frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:])
    with Image.open(path) as img:
        assert img.format == "MPO"
    assert imgio.load_image(path).shape == (60, 80, 3)
    proxy = imgio.load_for_model(path, max_side=20)
    assert proxy.pixels.shape == (15, 20, 3) and proxy.full_size == (60, 80)


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that claims a size but holds no pixel data (what a decompression bomb's header looks like)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_pixel_limits_replace_pillows_bomb_guard(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 60000, 60000)
    with pytest.raises(ImageReadError, match="more than the"):
        imgio.image_size(bomb)
    big = tmp_path / "big.png"
    _png_header_only(big, 15000, 14000)  # above Pillow's guard, below ours: the header reads
    assert imgio.image_size(big) == (15000, 14000)
    with pytest.raises(ImageReadError, match="only JPEG images this large"):
        imgio.load_for_model(big, 1024)
    scan = imgio.probe(tmp_path, "big.png")
    assert not scan.readable and "only JPEG" in scan.error
    assert Image.MAX_IMAGE_PIXELS is not None  # the global guard is left as it was


def test_real_photographs_scan_with_external_store(shared_data, tmp_path):
    """The read-only shared folders: a project over them keeps its store elsewhere, and every size
    (after EXIF) matches the ground truth's."""
    import json

    coco = shared_data / "COCO_MVal_subset"
    truth = {im["file_name"]: (im["width"], im["height"])
             for im in json.loads((coco / "instances_mval_subset.json").read_text())["images"]}
    with Project.create(coco, store_path=tmp_path / "coco.sqlite") as project:
        sizes = {i.file_name: (i.width, i.height) for i in project.images() if i.file_name.startswith("img/")}
        assert sizes == truth
        assert all(i.readable and len(i.sha256) == 64 for i in project.images())
    assert not (coco / ".seem-annotator").exists()

    berkeley = shared_data / "Berkeley"
    with Project.create(berkeley / "images", store_path=tmp_path / "bk.sqlite") as project:
        images = project.images()
        assert len(images) == 100 and all(i.readable for i in images)
        for image in images[::10]:
            with Image.open(berkeley / "masks" / (Path(image.file_name).stem + ".png")) as mask:
                assert (image.width, image.height) == mask.size
            proxy = project.load_for_model(image.id, max_side=256)
            assert proxy.full_size == (image.height, image.width) and max(proxy.pixels.shape[:2]) <= 256
