"""People's digit image files → the model's input, made the way MNIST was made.

Decode (PNG, JPEG or BMP; grayscale, RGB or RGBA; any size), find the paper and the ink (dark on
light or the reverse, told from the border), crop to the ink, scale its longer side to 20 px with
anti-aliasing, and place it in 28×28 with its centre of mass where MNIST puts it: the scaling and
the sub-pixel shift are one resampling, so the digit is blurred once, not twice.

NumPy and Pillow, not torch: one small image at a time is faster single-threaded, and torch's
thread pool on such tiny tensors waits on every other thread, which stalls on a busy machine.
"""

import io
import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import IMAGE_SIZE

FORMATS = ("PNG", "JPEG", "BMP")  # Pillow tries only these decoders: less surface for hostile files
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}  # what a folder is searched for (any case)
MAX_PIXELS = 40_000_000  # a 12-megapixel phone photo is far below; a decompression bomb is not
SIZE = IMAGE_SIZE  # MNIST's field
BOX = 20  # MNIST's digits fill a 20×20 box (longer side 20 in 9,997 of the 10,000 test images)
# Where MNIST puts the centre of mass, in pixel indices (row, column): measured on the 10,000 test
# digits, mean (13.99, 14.01), sd 0.29. Not 13.5, the field's geometric centre: MNIST shifted by
# whole pixels and landed half a pixel low and right, and the model learned that position.
CENTRE = 14.0
MIN_CONTRAST = 0.1  # ink must differ from the paper by 10% of full scale, or the image is blank
NOISE_SDS = 5  # noise passes 5 sd about once in 3.5 million pixels: beyond that is ink (see ink)
INK_FLOOR = 0.1  # below 10% of the strongest ink is paper noise (texture, JPEG ringing, specks)
CROP_LEVEL = 0.5  # the ink box is drawn at half the strongest ink (see crop)
FRINGE = 0.1  # fainter ink is kept for this fraction of the box around it
DRAFT = 512  # JPEGs decode at 1/2..1/8 scale while both sides stay at least this large
PRE_REDUCE = 2 * BOX  # a bigger crop is first averaged down by a whole factor to at least this


def collect(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to classify: each path as given, each folder's PNG/JPEG/BMP files sorted by name (not
    its subfolders). Also the error lines for folders that hold none."""
    files, errors = [], []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)  # missing or unreadable files are reported when loaded, in order
            continue
        try:
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        except OSError as exc:
            errors.append(f"{path}: cannot list the folder ({exc.strerror}): check its permissions")
            continue
        if not found:
            errors.append(f"{path}: the folder holds no .png, .jpg, .jpeg or .bmp files: point at "
                          "image files or a folder of them")
        files.extend(found)
    return files, errors


def _full_scale(image: Image.Image) -> float:
    if image.mode.startswith("I;16"):
        return 65535.0
    if image.mode == "I":  # 32-bit integers: in image files, 16-bit values widened
        return 65535.0 if image.getextrema()[1] > 255 else 255.0
    if image.mode == "F":
        return max(1.0, image.getextrema()[1])
    return 255.0


def _as_array(image: Image.Image, scale: float) -> np.ndarray:
    """A float32 (H, W) array from an image (its luminance if in colour), divided by `scale`."""
    return np.asarray(image.convert("F"), dtype=np.float32) / np.float32(scale)


def decode(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Luminance (H, W) in [0, 1] and opacity (H, W) in [0, 1] (None if the image has no alpha),
    upright per the EXIF orientation. Raises MnistError for anything that is not a whole image."""
    path = Path(path)
    if not path.exists():
        raise MnistError(f"{path}: no such file: check the path")
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed by the `with f` below; open errors get their own line)
    except OSError as exc:  # a folder, a permission problem
        raise MnistError(f"{path}: cannot read it ({exc.strerror or exc}): check the path and its "
                         "permissions") from None
    with f:
        return decode_stream(f, path)


def decode_stream(f: BinaryIO, path: str | Path, max_pixels: int = MAX_PIXELS
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """decode() of an open binary stream (a file, or bytes someone sent), `path` naming it in
    errors; images of more than `max_pixels` are refused from their header, before decoding."""
    with warnings.catch_warnings():
        # Pillow warns above 89 megapixels; max_pixels below refuses those with a clear line.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(f, formats=FORMATS)
            if image.width * image.height <= max_pixels:
                if image.format == "JPEG":
                    image.draft(image.mode, (DRAFT, DRAFT))  # decode big photos at a reduced scale
                image.load()  # decode now: a truncated file fails here, not later
        except UnidentifiedImageError:
            raise MnistError(f"{path}: not a PNG, JPEG or BMP image: save it as PNG") from None
        except Image.DecompressionBombError:
            raise MnistError(f"{path}: declares more than {max_pixels // 1_000_000} megapixels: "
                             "scale it down") from None
        except Exception as exc:  # Pillow's decoders raise many kinds for damaged data
            raise MnistError(f"{path}: the image data is cut short or corrupt ({exc}): copy or "
                             "export the file again") from None
    if image.width * image.height > max_pixels:
        raise MnistError(f"{path}: {image.width}×{image.height} pixels is more than "
                         f"{max_pixels // 1_000_000} megapixels: scale it down")
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            return _as_array(rgba.convert("RGB"), 255.0), _as_array(rgba.getchannel("A"), 255.0)
        return _as_array(image, _full_scale(image)), None
    except Exception as exc:  # a damaged EXIF block, a mode that does not convert
        raise MnistError(f"{path}: the image data is cut short or corrupt ({exc}): copy or "
                         "export the file again") from None


def flatten_alpha(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto the paper colour. Where the opaque pixels cover most of the image, they include
    the paper: its colour is their median. Where they cover less, they are the ink, drawn on a
    transparent sheet: the paper is white under dark ink, black under light ink."""
    if alpha.sum() == 0:
        return np.zeros_like(gray)  # nothing drawn: blank, reported by ink()
    opaque = alpha >= 0.5
    if opaque.mean() >= 0.5:
        paper = np.median(gray[opaque])
    else:
        paper = 1.0 if (gray * alpha).sum() / alpha.sum() < 0.5 else 0.0
    return (alpha * gray + (1 - alpha) * paper).astype(np.float32)


def border(gray: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels."""
    if min(gray.shape) <= 2:
        return gray.ravel()
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def ink(gray: np.ndarray) -> np.ndarray:
    """Ink intensity (H, W) in [0, 1], 1 for the strongest ink, 0 for paper, either polarity.

    The paper is the median of the border pixels (a digit rarely covers most of the border, even
    without margins), its grain the border's spread (median absolute deviation, as a normal sd).
    The ink is darker (ink on paper) or lighter (chalk on a board, MNIST itself): the side whose
    differences beyond NOISE_SDS grains from the paper add up to more. Below INK_FLOOR is paper."""
    edge = border(gray)
    paper = float(np.median(edge))
    grain = 1.4826 * float(np.median(np.abs(edge - paper)))
    darker, lighter = paper - gray, gray - paper
    # Ink lives in one tail; sensor noise fills both alike. Weighing the whole image (its mean
    # against the paper) let a thin pen stroke in a big noisy photo lose to noise and rounding.
    # Clean images have no grain: every difference counts, which is that mean rule again.
    for level in (NOISE_SDS * grain, 0.0):  # 0.0: nothing stands out beyond the noise
        dark, light = darker[darker > level].sum(), lighter[lighter > level].sum()
        if dark != light:
            break
    strength = np.clip(darker if dark >= light else lighter, 0, None)
    contrast = float(strength.max())
    if contrast < MIN_CONTRAST:
        raise MnistError(f"blank image: no ink stands out from the paper (contrast {contrast:.0%}, "
                         f"needs {MIN_CONTRAST:.0%}): check it shows a digit")
    strength /= contrast
    strength[strength < INK_FLOOR] = 0
    return strength


def crop(strength: np.ndarray) -> tuple[np.ndarray, int]:
    """The ink's box and the length of its longer side.

    The box is drawn at half the strongest ink: that is where a blurred stroke's edge lies, so a
    soft scan or an upscaled image measures the size its sharp original had (MNIST's own digits
    measure 20 px at that level too, 9,877 of 10,000). The fainter fringe around it is kept (a
    margin of a tenth of the box), only not counted in the size."""
    solid = strength >= CROP_LEVEL
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    longer = int(max(bottom - top, right - left))
    margin = math.ceil(longer * FRINGE)
    top, left = max(0, top - margin), max(0, left - margin)
    return strength[top:bottom + margin, left:right + margin], longer


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) in pixel indices."""
    mass = image.sum(dtype=np.float64)
    rows = (image.sum(axis=1, dtype=np.float64) * np.arange(image.shape[0])).sum() / mass
    cols = (image.sum(axis=0, dtype=np.float64) * np.arange(image.shape[1])).sum() / mass
    return float(rows), float(cols)


def place(region: np.ndarray, longer: int) -> np.ndarray:
    """Scale `region` by BOX/longer and place it in SIZE×SIZE with its centre of mass at
    (CENTRE, CENTRE), in one anti-aliased bicubic resampling.

    Pillow resamples the window of the source that maps onto the field: it starts (CENTRE + ½)
    output pixels before the centre of mass, so the shift is exact to a fraction of a pixel. Done
    as a scaling followed by a separate sub-pixel shift instead, the digit was blurred twice and a
    95% model lost 0.2-1.2 accuracy points on MNIST digits written to files; bicubic also came
    closer to the original digits than bilinear or area averaging (mean difference per pixel 0.035
    against 0.038 and 0.039 on 2,000 test digits upscaled to 64 and 200 px and brought back)."""
    image = Image.fromarray(np.ascontiguousarray(region, dtype=np.float32))
    factor = BOX / longer
    whole = longer // PRE_REDUCE
    if whole >= 2:  # average big crops down first (as Pillow's reducing_gap does): quicker
        image = image.reduce(whole)
        factor *= whole
    source = np.asarray(image)
    cy, cx = centre_of_mass(source)
    span = SIZE / factor  # the field's width in source pixels
    left = cx + 0.5 - (CENTRE + 0.5) / factor  # the field's edges in source coordinates
    top = cy + 0.5 - (CENTRE + 0.5) / factor
    # Pillow reads only inside the image: pad with paper wherever the field reaches past the crop.
    pad_top, pad_left = math.ceil(max(0.0, -top)), math.ceil(max(0.0, -left))
    pad_bottom = math.ceil(max(0.0, top + span - source.shape[0]))
    pad_right = math.ceil(max(0.0, left + span - source.shape[1]))
    padded = Image.fromarray(np.pad(source, ((pad_top, pad_bottom), (pad_left, pad_right))))
    field = padded.resize((SIZE, SIZE), Image.Resampling.BICUBIC,
                          box=(left + pad_left, top + pad_top, left + pad_left + span, top + pad_top + span))
    return np.clip(np.asarray(field), 0, 1)


def mnist_style(strength: np.ndarray) -> torch.Tensor:
    """Ink (H, W) → (28, 28) float in [0, 1], the strongest ink at 1, as MNIST's digits are."""
    field = place(*crop(strength))
    return torch.from_numpy(field / field.max())


def load_digit(path: str | Path) -> torch.Tensor:
    """The model's input (1, 28, 28) for one image file. Raises MnistError naming the file."""
    return model_input(*decode(path), path)


def load_digit_bytes(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """load_digit() of an image file's bytes (an upload; nothing is written), `name` in errors."""
    return model_input(*decode_stream(io.BytesIO(data), name, max_pixels), name)


def model_input(gray: np.ndarray, alpha: np.ndarray | None, path: str | Path) -> torch.Tensor:
    """The model's input (1, 28, 28) from decode()'s luminance and opacity."""
    if alpha is not None:
        gray = flatten_alpha(gray, alpha)
    try:
        return mnist_style(ink(gray))[None]
    except MnistError as exc:
        raise MnistError(f"{path}: {exc}") from None
