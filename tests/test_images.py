"""Image files → MNIST-style input: size, centring, polarity, alpha, formats, and one clear error per
bad file. No model needed here (tests/test_predict.py has the accuracy checks)."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_dvc import images
from mnist_dvc.errors import MnistError


def as_image(array: np.ndarray) -> Image.Image:
    """L image from floats in [0, 1]."""
    return Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8))


def mnist_digit(mnist_test, i: int) -> np.ndarray:
    """Test digit i as ink in [0, 1] (MNIST is light ink on black: 1 = ink)."""
    return mnist_test.images[i].numpy().astype(np.float32) / 255


def upscaled(ink: np.ndarray, size: int) -> np.ndarray:
    image = as_image(ink)
    if size != image.width:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255


def longer_box_side(field: np.ndarray) -> int:
    """The ink box's longer side, measured the way crop() measures: at half the strongest ink."""
    solid = field >= images.CROP_LEVEL
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    return int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def test_centre_is_where_mnist_puts_the_centre_of_mass(mnist_test):
    """CENTRE is a measured fact about MNIST, not the field's middle: catches the half-pixel slip
    (13.5, the geometric centre) that would put every digit half a pixel off what the model knows."""
    ink = mnist_test.images.float()
    mass = ink.sum(dim=(1, 2))
    index = torch.arange(28, dtype=torch.float32)
    rows = (ink.sum(dim=2) * index).sum(dim=1) / mass
    cols = (ink.sum(dim=1) * index).sum(dim=1) / mass
    assert abs(rows.mean().item() - images.CENTRE) < 0.05
    assert abs(cols.mean().item() - images.CENTRE) < 0.05


@pytest.mark.parametrize("size", [28, 64, 200, 1000])
def test_digits_fill_a_20_px_box_with_the_mass_centred(mnist_test, size):
    """Real digits at any size come out in MNIST's geometry: ink box 20 px on the longer side (19-21
    as MNIST's own digits measure after a sub-pixel shift; most exactly 20) and the centre of mass
    within 0.15 px of CENTRE (asked: 0.5; a correct shift is exact up to resampling, ~0.08).
    Catches no scaling, scaling the wrong side, a box drawn around faint fringe, and whole-pixel
    or box-centred placement."""
    sides, offsets = [], []
    for i in range(100):
        field = images.mnist_style(images.ink(upscaled(mnist_digit(mnist_test, i), size))).numpy()
        assert field.shape == (28, 28) and field.min() >= 0 and field.max() == pytest.approx(1)
        sides.append(longer_box_side(field))
        offsets.append(np.abs(np.array(images.centre_of_mass(field)) - images.CENTRE).max())
    assert set(sides) <= {19, 20, 21} and sides.count(20) >= 75, sorted(sides)
    assert max(offsets) < 0.15


@pytest.mark.parametrize("height, width", [(150, 40), (40, 150), (200, 20), (77, 77), (6, 4)])
def test_solid_shapes_scale_to_20_px_keeping_their_aspect(height, width):
    """A solid bar's length is exact to read (its ink summed along the bar): the longer side
    becomes 20 px, the shorter one keeps the proportion, small shapes are scaled up, and the mass
    lands on CENTRE. Catches stretching to 20×20, an off-by-one box, and a lost sub-pixel shift."""
    sheet = np.zeros((height + 70, width + 90), np.float32)
    sheet[30:30 + height, 55:55 + width] = 1
    field = images.mnist_style(images.ink(sheet)).numpy()
    length, breadth = field.sum(axis=0).max(), field.sum(axis=1).max()  # down a column, along a row
    if height < width:
        length, breadth = breadth, length
    assert length == pytest.approx(20, abs=0.5)
    assert breadth == pytest.approx(20 * min(height, width) / max(height, width), abs=0.5)
    assert np.allclose(images.centre_of_mass(field), images.CENTRE, atol=0.05)


def test_polarity_is_told_from_the_paper(mnist_test):
    """Dark ink on light paper and light ink on dark give the same ink; grey paper too. Catches a
    fixed polarity (half of all files would read as a blob) and a fixed 0.5 threshold (grey paper)."""
    digit = mnist_digit(mnist_test, 0)
    sheet = np.pad(digit, 10)
    expected = images.ink(sheet)
    cases = {"dark on white": 1 - sheet, "pencil on grey paper": 0.7 - 0.5 * sheet,
             "chalk on dark board": 0.25 + 0.6 * sheet, "light on mid grey": 0.45 + 0.5 * sheet}
    for name, gray in cases.items():
        assert np.allclose(images.ink(gray.astype(np.float32)), expected, atol=0.02), name


def test_polarity_without_margins(mnist_test):
    """Digits cropped tight to their ink, so the border ring crosses strokes: the paper is still
    found for at least 99% of them in both polarities (measured: 4 misses in 4,000, digits whose
    strokes cover most of their own border)."""
    right = 0
    for i in range(300):
        digit = mnist_digit(mnist_test, i)
        rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
        tight = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        for gray in (tight, 1 - tight):
            found = images.ink(gray)
            right += np.corrcoef(found.ravel(), tight.ravel())[0, 1] > 0.9
    assert right >= 0.99 * 600


def same_digit(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


def test_every_kind_of_file_gives_the_same_input(mnist_test, tmp_path):
    """One digit saved as grayscale, RGB, RGBA (ink on a transparent sheet; paper in a transparent
    frame), palette with a transparent index, 16-bit PNG, BMP, JPEG, a 2000 px JPEG, and a PNG stored
    sideways with an EXIF orientation: each loads as the MNIST digit (mean difference per pixel
    below 0.05; an unrelated digit differs by ~0.2). Catches alpha composited onto the wrong
    colour (the digit vanishes), 16-bit values clipped, EXIF ignored, colour read as one channel."""
    ink = np.pad(mnist_digit(mnist_test, 0), 6)
    original = torch.from_numpy(mnist_digit(mnist_test, 0))
    dark = as_image(1 - ink)  # dark ink on white paper
    big = as_image(1 - upscaled(ink, 200))
    rgba_sheet = Image.new("RGBA", big.size, (0, 0, 0, 0))
    rgba_sheet.putalpha(Image.eval(big, lambda v: 255 - v))
    white_sheet = Image.new("RGBA", big.size, (255, 255, 255, 0))
    white_sheet.putalpha(as_image(upscaled(ink, 200)))
    framed = Image.new("RGBA", (260, 240), (0, 0, 0, 0))
    framed.paste(big.convert("RGBA"), (40, 20))
    palette = dark.convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    gray_alpha = Image.merge("LA", (Image.new("L", big.size, 0), Image.eval(big, lambda v: 255 - v)))
    # A black frame marked transparent by its own palette index (64; 0-63 are grey levels): read
    # without the alpha, the frame would be the paper and the white paper the ink.
    indices = np.pad(np.asarray(big) // 4, 40, constant_values=64).astype(np.uint8)
    palette_frame = Image.fromarray(indices, "P")
    palette_frame.putpalette([4 * i for i in range(64) for _ in range(3)] + [0, 0, 0])
    sixteen = Image.fromarray(np.asarray(dark, dtype=np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90° anticlockwise: rotate clockwise to show
    files = {"gray.png": (dark, {}), "rgb.png": (dark.convert("RGB"), {}),
             "black ink on transparent.png": (rgba_sheet, {}),
             "white ink on transparent.png": (white_sheet, {}),
             "paper in transparent frame.png": (framed, {}),
             "palette with transparency.png": (palette, {}), "16-bit.png": (sixteen, {}),
             "gray with alpha.png": (gray_alpha, {}),
             "palette, black frame transparent.png": (palette_frame, {"transparency": 64}),
             "gray.bmp": (dark, {}), "gray.jpg": (dark.convert("RGB"), {"quality": 95}),
             "photo.jpg": (as_image(1 - upscaled(ink, 2000)), {"quality": 90}),
             "sideways.png": (big.transpose(Image.Transpose.ROTATE_90), {"exif": exif})}
    for name, (image, options) in files.items():
        image.save(tmp_path / name, **options)
        loaded = images.load_digit(tmp_path / name)
        assert loaded.shape == (1, 28, 28) and loaded.dtype == torch.float32
        assert same_digit(loaded[0], original) < 0.05, name
    assert same_digit(original, torch.from_numpy(mnist_digit(mnist_test, 1))) > 0.15


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: what a decompression bomb looks like to
    the size check, without making one."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_each_bad_file_gets_one_line_naming_it_and_the_fix(mnist_test, tmp_path):
    """Every kind of bad file raises MnistError (never a Pillow or NumPy exception, which would
    end the run) with one line starting with the path and saying what to do. Catches a damaged
    file escaping as an OSError, a decompression bomb decoded, and 16-bit images judged on an
    8-bit scale (a faint one taken for ink)."""
    good = as_image(1 - np.pad(mnist_digit(mnist_test, 0), 20))
    good.save(tmp_path / "good.png")
    good.convert("RGB").save(tmp_path / "good.jpg")
    png, jpeg = (tmp_path / "good.png").read_bytes(), (tmp_path / "good.jpg").read_bytes()
    noise = np.random.default_rng(0).uniform(0.48, 0.52, (50, 50))
    corrupt = "the image data is cut short or corrupt"
    again = "copy or export the file again"
    not_image = "not a PNG, JPEG or BMP image: save it as PNG"
    blank = "check it shows a digit"
    bad = {
        "missing.png": (None, ["no such file: check the path"]),
        "a folder.png": ("folder", ["cannot read it (Is a directory): check the path and its permissions"]),
        "empty.png": (b"", [not_image]),
        "text.png": (b"just some words\n", [not_image]),
        "animation.gif": (good, [not_image]),
        "cut.png": (png[:len(png) // 2], [corrupt, again]),
        "cut.jpg": (jpeg[:len(jpeg) // 2], [corrupt, again]),
        "huge.png": (png_header_only(8000, 6000),
                     ["8000×6000 pixels is more than 40 megapixels: scale it down"]),
        # Past Pillow's own bomb limit (twice its 89 megapixels): refused as Pillow opens it.
        "bomb.png": (png_header_only(20000, 10000), ["declares more than 40 megapixels: scale it down"]),
        "white.png": (Image.new("L", (40, 40), 255), ["blank image", blank]),
        "black.bmp": (Image.new("L", (40, 40), 0), ["blank image", blank]),
        "faint noise.png": (as_image(noise), ["blank image", blank]),
        # 3% of 16-bit full scale: blank, though 1,000 levels would look like ink on an 8-bit scale
        "faint 16-bit.png": (Image.fromarray(np.full((40, 40), 30000, np.uint16) + np.pad(
            np.full((20, 20), 1000, np.uint16), 10)), ["blank image", blank]),
        "transparent.png": (Image.new("RGBA", (40, 40), (0, 0, 0, 0)), ["blank image", blank]),
    }
    for name, (content, phrases) in bad.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, Image.Image):
            content.save(path)
        elif content == "folder":
            path.mkdir()
        with pytest.raises(MnistError) as caught:
            images.load_digit(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and all(p in message for p in phrases), message
        assert "\n" not in message and message.count(": ") >= 2, message  # problem: fix
        assert message.endswith(phrases[-1]), message  # the fix ends the line


def test_collect_expands_folders_and_keeps_files_as_given(tmp_path):
    """Folders give their image files sorted by name, any suffix case, not subfolders or other
    files; a folder with none is one error line; named files pass through (even missing ones, which
    are reported in their turn). Catches a folder's README read as an image and silent empty folders."""
    digits = tmp_path / "digits"
    (digits / "sub").mkdir(parents=True)
    for name in ["b.PNG", "a.jpg", "c.jpeg", "d.bmp", "notes.txt", "sub/e.png"]:
        (digits / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    files, errors = images.collect([tmp_path / "x.png", digits, tmp_path / "empty"])
    assert files == [tmp_path / "x.png"] + [digits / n for n in ["a.jpg", "b.PNG", "c.jpeg", "d.bmp"]]
    assert errors == [f"{tmp_path / 'empty'}: the folder holds no .png, .jpg, .jpeg or .bmp files: "
                      "point at image files or a folder of them"]


# Thin pen digits as ImageDraw strokes in a unit box (x, y; y down): polylines, and ellipses.
PEN_DIGITS = {
    0: [("ellipse", (0.1, 0, 0.9, 1))],
    1: [[(0.3, 0.2), (0.6, 0), (0.6, 1)]],
    4: [[(0.7, 1), (0.7, 0), (0, 0.7), (1, 0.7)]],
    7: [[(0, 0), (1, 0), (0.4, 1)]],
    8: [("ellipse", (0.2, 0, 0.8, 0.45)), ("ellipse", (0.1, 0.45, 0.9, 1))],
}


def pen_photo(rng: np.random.Generator, digit: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1200×900 photo of a 3 px pen digit about a tenth of the frame high on grey paper (level
    170-200), with sensor noise (sd 8-15) and pixel values truncated to integers, in [0, 1]; and
    the pen's mask."""
    mask = Image.new("L", (1200, 900), 0)
    draw = ImageDraw.Draw(mask)
    height, left, top = rng.uniform(80, 140), rng.uniform(100, 1000), rng.uniform(100, 700)

    def at(x, y):
        return left + x * 0.7 * height, top + y * height

    for stroke in PEN_DIGITS[digit]:
        if stroke[0] == "ellipse":
            x0, y0, x1, y1 = stroke[1]
            draw.ellipse([at(x0, y0), at(x1, y1)], outline=255, width=3)
        else:
            draw.line([at(x, y) for x, y in stroke], fill=255, width=3)
    pen = np.asarray(mask) > 0
    photo = rng.uniform(170, 200) - rng.uniform(100, 140) * pen
    photo += rng.normal(0, rng.uniform(8, 15), pen.shape)
    return (np.floor(np.clip(photo, 0, 255)) / 255).astype(np.float32), pen


def test_thin_pen_digit_in_a_big_noisy_photo_is_dark_ink():
    """A thin pen digit in a big photo of grey paper with sensor noise and truncated pixel values:
    the ink is found dark (the pen strokes are the strongest ink) in at least 19 of 20 photos.
    Catches the polarity decided by the image's mean against the border's median: the digit moves
    the mean by a fifth of a level, less than truncation moves it from the (integer) median, so
    noise became the "ink" in 6-10 of these 20 and predict read the digit as "0 (0.4x)"."""
    rng = np.random.default_rng(0)
    right = 0
    for i in range(20):
        gray, pen = pen_photo(rng, list(PEN_DIGITS)[i % len(PEN_DIGITS)])
        right += images.ink(gray)[pen].mean() > 0.5  # the wrong side leaves the strokes at 0
    assert right >= 19, f"ink found dark in {right} of 20"


def test_the_pixel_limit_is_inclusive_and_checked_before_decoding(mnist_test):
    """An image of exactly max_pixels is read; one pixel fewer allowed and it is refused, from
    its header alone (a header-only PNG, no pixel data, gets the size line, not "cut short").
    Bug caught: the limit off by one, or checked only after decoding."""
    data = png_of(as_image(1 - np.pad(mnist_digit(mnist_test, 0), 20)))  # 68×68
    assert images.load_digit_bytes(data, "at.png", max_pixels=68 * 68).shape == (1, 28, 28)
    with pytest.raises(MnistError, match=r"^over\.png: 68×68 pixels is more than 0 megapixels"):
        images.load_digit_bytes(data, "over.png", max_pixels=68 * 68 - 1)
    with pytest.raises(MnistError, match=r"^header\.png: 300×200 pixels is more than"):
        images.load_digit_bytes(png_header_only(300, 200), "header.png", max_pixels=300 * 200 - 1)


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_and_a_png_whole(tmp_path):
    """JPEGs decode at 1/2 to 1/8 scale while both sides stay at least DRAFT (512) px: a 2000 px
    photo reads as 1000 px, in a quarter of the work. PNGs have no such option. Bug caught: the
    draft never applied (or applied to every format)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (2000, 2000), dtype=np.uint8))
    photo.save(tmp_path / "photo.jpg", quality=90)
    photo.save(tmp_path / "photo.png")
    assert images.decode(tmp_path / "photo.jpg")[0].shape == (1000, 1000)
    assert images.decode(tmp_path / "photo.png")[0].shape == (2000, 2000)


def test_an_upload_reads_as_the_same_file_and_errors_name_it(mnist_test, tmp_path):
    """load_digit_bytes (serve's uploads) gives what load_digit gives for the same file, and its
    errors name the upload. Bug caught: the bytes, the name or the pixel limit not passed on."""
    as_image(1 - np.pad(mnist_digit(mnist_test, 0), 20)).save(tmp_path / "digit.png")
    data = (tmp_path / "digit.png").read_bytes()
    assert torch.equal(images.load_digit_bytes(data, "upload.png"), images.load_digit(tmp_path / "digit.png"))
    with pytest.raises(MnistError, match=r"^upload\.png: blank image"):
        images.load_digit_bytes(png_of(Image.new("L", (40, 40), 255)), "upload.png")
    with pytest.raises(MnistError, match=r"^upload\.png: 68×68 pixels is more than"):
        images.load_digit_bytes(data, "upload.png", max_pixels=100)


def png_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_border_is_the_outermost_ring_once():
    """Bug caught: a ring one pixel in from an edge, or a corner counted twice, so the paper's
    colour and grain come from the wrong pixels."""
    gray = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert sorted(images.border(gray).tolist()) == [0, 1, 2, 3, 4, 5, 9, 10, 14, 15, 16, 17, 18, 19]
    assert sorted(images.border(gray[:3]).tolist()) == [0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14]
    assert sorted(images.border(gray[:2]).tolist()) == list(range(10))  # 2 rows: all of them


def test_crop_is_the_ink_box_with_a_tenth_of_a_fringe():
    """A 10×6 block of ink at rows 5-14, columns 7-12 of a 30×30 field: the box's longer side is
    10, the crop keeps a margin of 1 px (a tenth of it) on every side, and stops at the field's
    edges. Bug caught: a box a row or column short, a margin of 10 / 0.1 px, a crop that cuts the
    first row or column when the ink touches the edge."""
    strength = np.zeros((30, 30), np.float32)
    strength[5:15, 7:13] = 1.0
    region, longer = images.crop(strength)
    assert longer == 10 and region.shape == (12, 8) and region.sum() == 60
    half = strength.copy()
    half[5:15, 13] = images.CROP_LEVEL  # half the strongest ink is the box's edge: it counts
    assert images.crop(half)[0].shape == (12, 9)
    touching = np.zeros((30, 30), np.float32)
    touching[0:10, 0:6] = 1.0
    region, longer = images.crop(touching)
    assert longer == 10 and region.shape == (11, 7) and region.sum() == 60
