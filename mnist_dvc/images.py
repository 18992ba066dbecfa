"""People's digit image files → the model's input, made the way MNIST was made.

Decode (PNG, JPEG or BMP; grayscale, RGB or RGBA; any size), find the paper and the ink (dark on
light or the reverse, told from the border), crop to the ink, scale the longer side to 20 px with
anti-aliasing, and place it in 28×28 with its centre of mass where MNIST puts it.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_dvc.errors import MnistError

FORMATS = ("PNG", "JPEG", "BMP")  # Pillow tries only these decoders: less surface for hostile files
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}  # what a folder is searched for (any case)
MAX_PIXELS = 40_000_000  # a 12-megapixel phone photo is far below; a decompression bomb is not
SIZE = 28  # MNIST's field
BOX = 20  # MNIST's digits fill a 20×20 box (longer side 20 in 9,997 of the 10,000 test images)
# Where MNIST puts the centre of mass, in pixel indices (row, column): measured on the 10,000 test
# digits, mean (13.99, 14.01), sd 0.29. Not 13.5, the field's geometric centre: MNIST shifted by
# whole pixels and landed half a pixel low and right, and the model learned that position.
CENTRE = 14.0
MIN_CONTRAST = 0.1  # ink must differ from the paper by 10% of full scale, or the image is blank
CROP_LEVEL = 0.5  # the ink box is drawn at half the strongest ink (see crop)
FRINGE = 0.1  # ink fainter than that is kept for this fraction of the box around it
INK_FLOOR = 0.1  # below 10% of the strongest ink is paper noise (texture, JPEG ringing, specks)
DRAFT = 512  # JPEGs decode at 1/2..1/8 scale while both sides stay at least this large


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
    if image.mode == "I":  # 16-bit PNGs open as "I"; the values are still 16-bit
        return 65535.0 if image.getextrema()[1] > 255 else 255.0
    if image.mode == "F":
        return max(1.0, image.getextrema()[1])
    return 255.0


def _as_tensor(image: Image.Image, scale: float) -> torch.Tensor:
    """A float32 (H, W) tensor from a one-band image, divided by `scale`."""
    flat = torch.frombuffer(bytearray(image.convert("F").tobytes()), dtype=torch.float32)
    return flat.view(image.height, image.width) / scale


def decode(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Luminance (H, W) in [0, 1] and opacity (H, W) in [0, 1] (None if the image has no alpha),
    upright per the EXIF orientation. Raises MnistError for anything that is not a whole image."""
    path = Path(path)
    if not path.exists():
        raise MnistError(f"{path}: no such file: check the path")
    try:
        with open(path, "rb") as f:
            try:
                image = Image.open(f, formats=FORMATS)
            except UnidentifiedImageError:
                raise MnistError(f"{path}: not a PNG, JPEG or BMP image (or its header is damaged): "
                                 "save it as PNG") from None
            if image.width * image.height > MAX_PIXELS:
                raise MnistError(f"{path}: {image.width}×{image.height} pixels is more than "
                                 f"{MAX_PIXELS // 1_000_000} megapixels: scale it down") from None
            if image.format == "JPEG":
                image.draft(image.mode, (DRAFT, DRAFT))  # decode big photos at a reduced scale
            try:
                image.load()  # decode now: a truncated file fails here, not later
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise MnistError(f"{path}: the image data is cut short or corrupt ({exc}): copy "
                                 "or export the file again") from None
    except OSError as exc:  # a folder, a permission problem
        raise MnistError(f"{path}: cannot read it ({exc.strerror or exc}): check the path and its "
                         "permissions") from None
    image = ImageOps.exif_transpose(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        return _as_tensor(rgba.convert("RGB"), 255.0), _as_tensor(rgba.getchannel("A"), 255.0)
    return _as_tensor(image, _full_scale(image)), None


def flatten_alpha(gray: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composite onto the paper colour. Where the opaque pixels cover most of the image, they include
    the paper: its colour is their median. Where they cover less, they are the ink, drawn on a
    transparent sheet: the paper is white under dark ink, black under light ink."""
    opaque = alpha >= 0.5
    if alpha.sum() == 0:
        return torch.zeros_like(gray)  # nothing drawn: blank, reported by ink()
    if opaque.float().mean() >= 0.5:
        paper = gray[opaque].median()
    else:
        ink_level = (gray * alpha).sum() / alpha.sum()
        paper = torch.tensor(1.0 if ink_level < 0.5 else 0.0)
    return alpha * gray + (1 - alpha) * paper


def border(gray: torch.Tensor) -> torch.Tensor:
    """The outermost ring of pixels."""
    if min(gray.shape) <= 2:
        return gray.flatten()
    return torch.cat([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def ink(gray: torch.Tensor) -> torch.Tensor:
    """Ink intensity (H, W) in [0, 1], 1 for the strongest ink, 0 for paper, either polarity.

    The paper is the median of the border pixels (a digit rarely covers most of the border, even
    without margins). The ink is whatever the rest of the image differs from it by, on average:
    darker (ink on paper) or lighter (chalk on a board, MNIST itself)."""
    paper = border(gray).median()
    dark_ink = gray.mean() <= paper
    strength = (paper - gray) if dark_ink else (gray - paper)
    strength = strength.clamp_(min=0)
    contrast = strength.max().item()
    if contrast < MIN_CONTRAST:
        raise MnistError(f"blank image: no ink stands out from the paper (contrast {contrast:.0%}, "
                         f"needs {MIN_CONTRAST:.0%}): check it shows a digit")
    strength /= contrast
    return strength.masked_fill_(strength < INK_FLOOR, 0.0)


def crop(strength: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The ink's box and the length of its longer side.

    The box is drawn at half the strongest ink: that is where a blurred stroke's edge lies, so a
    soft scan or an upscaled image measures the size its sharp original had (MNIST's own digits
    measure 20 px at that level too, 9,877 of 10,000). The fainter fringe around it is kept (a
    margin of a tenth of the box), only not counted in the size."""
    solid = strength >= CROP_LEVEL
    rows = torch.nonzero(solid.any(dim=1)).flatten()
    cols = torch.nonzero(solid.any(dim=0)).flatten()
    top, bottom, left, right = rows[0].item(), rows[-1].item() + 1, cols[0].item(), cols[-1].item() + 1
    longer = max(bottom - top, right - left)
    margin = math.ceil(longer * FRINGE)
    top, left = max(0, top - margin), max(0, left - margin)
    return strength[top:bottom + margin, left:right + margin], longer


def scale_to_box(strength: torch.Tensor, longer: int, box: int = BOX) -> torch.Tensor:
    """Scale by box/longer, the aspect ratio kept; bicubic, anti-aliased when shrinking.

    Bicubic came closest to the original digits: 2,000 MNIST test digits upscaled to 64 and 200 px
    and brought back differed from the originals by a mean 0.035 per pixel (bilinear 0.038, area
    0.039), and a 96% model lost 0.05 and 0.0 accuracy points on them (bilinear 0.4 and 0.15)."""
    h, w = strength.shape
    factor = box / longer
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    if size == (h, w):
        return strength
    scaled = F.interpolate(strength[None, None], size=size, mode="bicubic", antialias=True,
                           align_corners=False)[0, 0]
    return scaled.clamp_(0, 1)


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    """(row, column) in pixel indices."""
    mass = image.sum()
    rows = torch.arange(image.shape[0], dtype=image.dtype)
    cols = torch.arange(image.shape[1], dtype=image.dtype)
    return ((image.sum(dim=1) * rows).sum() / mass).item(), ((image.sum(dim=0) * cols).sum() / mass).item()


def place(digit: torch.Tensor, size: int = SIZE, centre: float = CENTRE) -> torch.Tensor:
    """`digit` in a size×size field with its centre of mass at (centre, centre).

    The whole-pixel part of the shift is a paste; the fraction f a linear blend of each pixel with
    its neighbour, b[j] = (1-f)·a[j] + f·a[j-1], which moves the centre of mass by exactly f and
    keeps the total ink."""
    cy, cx = centre_of_mass(digit)
    top, left = centre - cy, centre - cx
    fy, fx = top - math.floor(top), left - math.floor(left)
    shifted = F.pad(digit, (0, 1, 0, 1))
    shifted = (1 - fy) * shifted + fy * torch.roll(shifted, 1, dims=0)
    shifted = (1 - fx) * shifted + fx * torch.roll(shifted, 1, dims=1)
    # Paste into a field with room on every side, then cut out the middle: ink that would fall
    # outside the 28×28 field (only a digit whose mass sits at one end of its box) is cut off.
    pad = size + 2
    field = torch.zeros(size + 2 * pad, size + 2 * pad, dtype=digit.dtype)
    y, x = pad + math.floor(top), pad + math.floor(left)
    field[y:y + shifted.shape[0], x:x + shifted.shape[1]] = shifted
    return field[pad:pad + size, pad:pad + size]


def mnist_style(strength: torch.Tensor) -> torch.Tensor:
    """Ink (H, W) → (28, 28) float in [0, 1], the strongest ink at 1, as MNIST's digits are."""
    digit = place(scale_to_box(*crop(strength)))
    return digit / digit.max()


def load_digit(path: str | Path) -> torch.Tensor:
    """The model's input (1, 28, 28) for one image file. Raises MnistError naming the file."""
    gray, alpha = decode(path)
    if alpha is not None:
        gray = flatten_alpha(gray, alpha)
    try:
        return mnist_style(ink(gray))[None]
    except MnistError as exc:
        raise MnistError(f"{path}: {exc}") from None
