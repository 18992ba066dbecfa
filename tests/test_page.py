"""The drawing page in a real browser (headless Chromium through Selenium, Debian's chromium and
chromium-driver; .ci/run installs them): a digit drawn with a finger's pointer events is read and
shown, and an uploaded file is read as predict reads it."""

import base64
import os
from pathlib import Path

import pytest
import torch
from browser import chromium
from page_helpers import page_project, serving
from PIL import Image
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.support.ui import WebDriverWait
from test_serve import expected

from mnist_dvc import images

SCREENSHOT = os.environ.get("PAGE_SCREENSHOT")  # set: the drawing test saves the page there


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_model):
    project = page_project(tmp_path_factory.mktemp("page"), small_model)
    with serving(project) as (_, url, _):
        yield project, url


@pytest.fixture(scope="module")
def browser():
    with chromium() as chrome:
        yield chrome


def settled(driver) -> bool:
    """The page shows the answer for its latest drawing and waits for no other."""
    return driver.execute_script("const d = document.body.dataset; "
                                 "return d.pending === '0' && d.shown === d.changes")


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def shown_input(driver) -> torch.Tensor:
    """The preview canvas's 28×28 pixels (its red channel, 0-255)."""
    pixels = driver.execute_script(
        "return Array.from(document.getElementById('input').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0));")
    return torch.tensor(pixels, dtype=torch.uint8).reshape(28, 28)


def bars(driver) -> list[float]:
    return [float(driver.find_element("id", f"bar-{d}").get_attribute("data-p")) for d in range(10)]


def check_answer(driver, project: Path, data: bytes):
    """The page shows what predict's functions make of `data`: the digit, the 28×28 input, the
    calibrated bars, and the grader's chance under the raw and the hand-in softmax."""
    want = expected(project, data)
    assert text(driver, "digit") == str(want["digit"])
    assert torch.equal(shown_input(driver), (want["input"] * 255).round().to(torch.uint8))
    assert bars(driver) == pytest.approx(want["handin"], abs=1e-6)
    assert text(driver, "chance-raw") == f"{want['raw'][want['digit']]:.4f}"
    assert text(driver, "chance-handin") == f"{want['handin'][want['digit']]:.4f}"
    assert text(driver, "error") == ""


SEVEN = [(-90, -90), (90, -90), (60, -30), (20, 40), (-10, 110)]  # from the pad's centre, in px


@pytest.mark.slow
def test_a_digit_drawn_with_a_finger_is_read_and_shown(served, browser):
    """A touch pointer draws a 7 on the pad (pointerdown, moves, pointerup); the page settles on the
    answer for exactly what was drawn: the label is 7, the preview is predict's 28×28 input of the
    pad's PNG, the bars and the grader's chances are those softmaxes. Choosing another true digit
    shows its probabilities; Clear empties it all. Catches mouse-only handlers (a finger draws
    nothing), a preview or bars from something else than the answer, stale answers shown after
    newer strokes, and the raw and hand-in chances swapped."""
    project, url = served
    browser.get(url + "/")
    pad = browser.find_element("id", "pad")
    finger = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"), duration=30)
    finger.pointer_action.move_to(pad, *SEVEN[0]).pointer_down()
    for point in SEVEN[1:]:
        finger.pointer_action.move_to(pad, *point)
    finger.pointer_action.pointer_up()
    finger.perform()
    WebDriverWait(browser, 30).until(settled)
    assert int(browser.execute_script("return document.body.dataset.changes")) >= len(SEVEN)
    drawn = base64.b64decode(browser.execute_script(
        "return document.getElementById('pad').toDataURL('image/png').split(',')[1]"))
    check_answer(browser, project, drawn)
    assert text(browser, "digit") == "7"
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)

    want = expected(project, drawn)
    browser.execute_script("const t = document.getElementById('truth'); t.value = '1'; "
                           "t.dispatchEvent(new Event('change'));")
    assert text(browser, "chance-raw") == f"{want['raw'][1]:.4f}"
    assert text(browser, "chance-handin") == f"{want['handin'][1]:.4f}"

    browser.find_element("id", "clear").click()
    WebDriverWait(browser, 30).until(settled)
    assert text(browser, "digit") == "–" and shown_input(browser).sum() == 0
    assert text(browser, "chance-handin") == "–"


@pytest.mark.slow
def test_an_uploaded_file_is_read_as_predict_reads_it(served, browser, mnist_test, tmp_path):
    """An MNIST test digit, 8× upscaled, dark ink on light paper, uploaded through the file input:
    the page shows predict's answer for that file (its own bytes, not the pad's rescaled copy);
    then a file that is no image gets the server's one line. Catches an upload that sends the pad
    (rescaled, lossy) instead of the file, and refusals that leave the old answer up."""
    project, url = served
    browser.get(url + "/")
    digit = 255 - mnist_test.images[0].numpy()
    path = tmp_path / "digit.png"
    Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC).save(path)
    browser.find_element("id", "upload").send_keys(str(path))
    WebDriverWait(browser, 30).until(settled)
    check_answer(browser, project, path.read_bytes())
    assert torch.equal(shown_input(browser), (images.load_digit(path)[0] * 255).round().to(torch.uint8))

    (tmp_path / "notes.png").write_bytes(b"not an image")
    browser.find_element("id", "upload").send_keys(str(tmp_path / "notes.png"))
    WebDriverWait(browser, 30).until(settled)
    assert text(browser, "error") == "the image: not a PNG, JPEG or BMP image: save it as PNG"
    assert text(browser, "digit") == "–"
