"""Reading images the same way everywhere: EXIF-oriented, 8-bit RGB, with clear errors.

Every size in the project is *after* EXIF orientation (what a person sees), so every reader here
applies it: `image_size` from the header alone, `load_image` at full resolution, `load_for_model`
as a bounded-size proxy. Pixel formats (grayscale, RGBA, palette, 16-bit PNG/TIFF, CMYK JPEG) all
come back as (H, W, 3) uint8 RGB; alpha is dropped (the colour underneath is kept), 16-bit values
are scaled to 8 bits.

Very large images (e.g. 20000 x 15000): the header is read without decoding; JPEGs are decoded
straight at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling through PIL's `draft`) so the proxy never
costs full-resolution memory; other formats are decoded once at 8 bits and immediately shrunk.
Pillow's decompression-bomb guard is replaced by our own explicit pixel limits (`MAX_PIXELS` for
anything, `MAX_FULL_DECODE_PIXELS` for a full-resolution array), each refused with an ImageReadError.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from seem_annotator.errors import ImageReadError

SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MAX_PIXELS = 1_500_000_000          # refuse headers claiming more (e.g. 40000 x 40000)
MAX_FULL_DECODE_PIXELS = 200_000_000  # full-res RGB array at most 600 MB
_ORIENTATION_TAG = 0x0112
_open_lock = threading.Lock()
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never grey padding


class ImageSize(NamedTuple):
    """Oriented size in pixels. Unpacks as (width, height), like PIL."""

    width: int
    height: int


class ProxyImage(NamedTuple):
    """A model/display proxy: `pixels` (h, w, 3) uint8 RGB, oriented, longest side <= max_side;
    `full_size` (H, W) of the oriented original (the size masks are kept at)."""

    pixels: np.ndarray
    full_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """proxy pixels per full-resolution pixel."""
        return self.pixels.shape[0] / self.full_size[0]


def _open(path: Path) -> Image.Image:
    """Open lazily (header only) with Pillow's bomb guard swapped for our explicit limit."""
    if not path.is_file():
        raise ImageReadError(f"Image file {path} does not exist.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"Image file {path} is empty (0 bytes).")
    # The guard is a module global; swap it under a lock so concurrent openers see a consistent value.
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            img = Image.open(path)
        except UnidentifiedImageError as exc:
            raise ImageReadError(f"{path} is not an image file Pillow can read.") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{path} could not be read as an image ({exc}).") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = img.size
    if w <= 0 or h <= 0:
        img.close()
        raise ImageReadError(f"{path} has an invalid size {w}x{h}.")
    if w * h > MAX_PIXELS:
        img.close()
        raise ImageReadError(f"{path} is {w}x{h} pixels, more than the {MAX_PIXELS:,} supported.")
    return img


def _is_jpeg(img: Image.Image) -> bool:
    """JPEG or MPO (phone cameras' multi-picture JPEG): both decode through libjpeg with DCT scaling."""
    return img.format in ("JPEG", "MPO")


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W[, C]) array, matching PIL's exif_transpose."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return np.rot90(arr, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _oriented_size(img: Image.Image) -> ImageSize:
    w, h = img.size
    return ImageSize(h, w) if _orientation(img) in (5, 6, 7, 8) else ImageSize(w, h)


def image_size(path: str | os.PathLike) -> ImageSize:
    """(width, height) after EXIF orientation, from the header only (no pixel decoding)."""
    with _open(Path(path)) as img:
        return _oriented_size(img)


def _to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    """Decode a PIL image to (H, W, 3) uint8 RGB (not oriented)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            if 0.0 <= lo and hi <= 1.0:
                arr = arr * 255.0
            elif hi > lo:
                arr = (arr - lo) * (255.0 / (hi - lo))
            arr = np.nan_to_num(arr)
        elif mode.startswith("I;16") or (arr.min() >= 0 and arr.max() <= 65535):
            arr = arr.astype(np.float32) / 257.0  # 16-bit range -> 8-bit
        else:
            lo, hi = int(arr.min()), int(arr.max())
            arr = (arr.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1))
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")  # L, LA, P, PA, RGBA (alpha dropped), CMYK, YCbCr, 1
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageReadError(f"{path} decoded to an unexpected pixel layout {arr.shape} {arr.dtype}.")
    return arr


def _decode_with_opencv(path: Path, reduce: int = 1) -> np.ndarray:
    """Fallback decoder (e.g. 48-bit RGB TIFF Pillow cannot read): (H, W, 3) uint8 RGB, not oriented."""
    import cv2

    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
    data = np.fromfile(str(path), dtype=np.uint8)  # np.fromfile copes with non-ASCII paths
    arr = cv2.imdecode(data, flags)
    if arr is None:
        raise ImageReadError(f"{path} could not be decoded (truncated or unsupported image data).")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = cv2.normalize(arr, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    else:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if reduce > 1:
        arr = cv2.resize(arr, (max(1, arr.shape[1] // reduce), max(1, arr.shape[0] // reduce)),
                         interpolation=cv2.INTER_AREA)
    return arr


def _decode(img: Image.Image, path: Path) -> np.ndarray:
    try:
        img.load()
        return _to_rgb8(img, path)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, MemoryError) as exc:
        text = str(exc)
        if "truncated" in text.lower() or "broken" in text.lower():
            raise ImageReadError(f"{path} is truncated or damaged ({text}).") from exc
        if isinstance(exc, MemoryError):
            raise ImageReadError(f"{path} is too large to decode in the available memory.") from exc
        # Pillow lacks some layouts (e.g. 16-bit RGB TIFF); OpenCV reads them.
        try:
            return _decode_with_opencv(path)
        except ImageReadError:
            raise ImageReadError(f"{path} could not be decoded ({text}).") from exc


def load_image(path: str | os.PathLike, max_pixels: int = MAX_FULL_DECODE_PIXELS) -> np.ndarray:
    """The full-resolution image as (H, W, 3) uint8 RGB after EXIF orientation.

    Raises ImageReadError for a missing, empty, truncated or non-image file, or one with more than
    `max_pixels` pixels (use `load_for_model` for a bounded proxy of those).
    """
    path = Path(path)
    with _open(path) as img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageReadError(f"{path} is {w}x{h} pixels, too large to load at full resolution "
                                 f"(limit {max_pixels:,}); it is shown and segmented as a downscaled proxy.")
        orientation = _orientation(img)
        arr = _decode(img, path)
    return np.ascontiguousarray(orient(arr, orientation))


def load_for_model(path: str | os.PathLike, max_side: int = 1024) -> ProxyImage:
    """An oriented RGB proxy whose longest side is at most `max_side`, plus the full (H, W).

    Images already small enough come back at full resolution. JPEGs are decoded at a reduced DCT
    scale first, so memory stays near the proxy size even for 20000 x 15000 photographs.
    """
    import cv2

    path = Path(path)
    if max_side < 1:
        raise ValueError("max_side must be positive")
    with _open(path) as img:
        full = _oriented_size(img)
        orientation = _orientation(img)
        longest = max(full)
        if longest <= max_side:
            arr = _decode(img, path)
        else:
            raw_w, raw_h = img.size
            scale = max_side / longest
            if _is_jpeg(img):
                # Ask for at least the target size; libjpeg picks the smallest 1/k scale above it.
                img.draft("RGB", (max(1, int(raw_w * scale)), max(1, int(raw_h * scale))))
                arr = _decode(img, path)
            elif raw_w * raw_h > MAX_FULL_DECODE_PIXELS:
                raise ImageReadError(f"{path} is {raw_w}x{raw_h} pixels; only JPEG images this large can "
                                     "be opened (convert it to JPEG or tile it).")
            else:
                arr = _decode(img, path)
    full_size = (full.height, full.width)
    arr = orient(arr, orientation)
    h, w = arr.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        arr = cv2.resize(np.ascontiguousarray(arr), size, interpolation=cv2.INTER_AREA)
    return ProxyImage(np.ascontiguousarray(arr), full_size)


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                digest.update(chunk)
    except OSError as exc:
        raise ImageReadError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return digest.hexdigest()


class ScannedImage(NamedTuple):
    """What a folder scan learns about one file: `file_name` relative POSIX path, oriented size
    (0, 0 when unreadable), sha256 (None when the file cannot be read at all), `error` when the
    image cannot be decoded, and the file's size and modification time (ns) when it was hashed."""

    file_name: str
    width: int
    height: int
    sha256: str | None
    error: str | None
    file_size: int | None = None
    mtime_ns: int | None = None

    @property
    def readable(self) -> bool:
        return self.error is None


def iter_image_files(root: str | os.PathLike) -> Iterator[str]:
    """Relative POSIX paths of supported image files under `root`, sorted, recursing into
    sub-folders and skipping hidden ones (such as `.seem-annotator`)."""
    root = Path(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    yield from sorted(found)


def probe(root: str | os.PathLike, file_name: str) -> ScannedImage:
    """Size, hash and readability of one file. Checks that pixels decode (a header alone can hide a
    truncated body), so an unreadable image is caught when the folder is scanned."""
    path = Path(root) / file_name
    try:
        stat = path.stat()
        sha = file_sha256(path)
    except (OSError, ImageReadError) as exc:
        return ScannedImage(file_name, 0, 0, None, str(exc) if isinstance(exc, ImageReadError)
                            else f"Cannot read {path}: {exc.strerror or exc}.")
    file_stat = (stat.st_size, stat.st_mtime_ns)
    try:
        size = image_size(path)
        _verify(path)
    except ImageReadError as exc:
        return ScannedImage(file_name, 0, 0, sha, str(exc), *file_stat)
    return ScannedImage(file_name, size.width, size.height, sha, None, *file_stat)


def _verify(path: Path) -> None:
    """Cheap full-body check: PIL's verify() walks the compressed data for PNG; for JPEG and other
    formats decode at the smallest scale."""
    with _open(path) as img:
        if not _is_jpeg(img) and img.size[0] * img.size[1] > MAX_FULL_DECODE_PIXELS:
            raise ImageReadError(f"{path} is {img.size[0]}x{img.size[1]} pixels; only JPEG images this "
                                 "large can be opened (convert it to JPEG or tile it).")
        if img.format == "PNG":
            try:
                img.verify()
            except Exception as exc:
                raise ImageReadError(f"{path} is truncated or damaged ({exc}).") from exc
            return
        if _is_jpeg(img):
            img.draft(img.mode, (1, 1))
        _decode(img, path)


def scan_folder(root: str | os.PathLike) -> list[ScannedImage]:
    """Probe every supported image under `root` (sorted); unreadable files are marked, not raised."""
    return [probe(root, name) for name in iter_image_files(root)]
