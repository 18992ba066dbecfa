"""The drawing page's web server (`mnist-dvc serve`): the page's own files, and one endpoint that
reads a digit image the way predict does.

    GET  /, /page.js, /page.css   the page (mnist_dvc/page/; nothing else is served)
    GET  /api/model               which model, its hand-in factor and where that came from
    POST /api/read                {"image": "data:image/png;base64,..."} (PNG, JPEG or BMP) ->
                                  the 28×28 input, the digit, both softmaxes, any doubt

Every request body is untrusted: a wrong method, path or content type, a body over MAX_BODY,
malformed JSON or base64, something that is not an image, an image over MAX_PIXELS (refused from
its header, before decoding) each get a 4xx and one line of JSON, {"error": "..."}, naming the
problem and the fix. Images are decoded in memory; no request writes a file. One image is read at a
time, in one thread, so memory stays bounded however many clients send at once.
"""

import base64
import binascii
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import torch

from mnist_dvc import course, paths
from mnist_dvc.calibrated import hand_in_factor
from mnist_dvc.classify import answer_batch
from mnist_dvc.errors import MnistError
from mnist_dvc.images import load_digit_bytes
from mnist_dvc.model import MyConvNet

PAGE = Path(__file__).parent / "page"
FILES = {  # URL path -> (file in PAGE, content type): the only files served
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
MAX_BODY = 8 * 1024 * 1024  # a 6 MB image file, base64-encoded; a canvas drawing is a few kB
MAX_PIXELS = 16_000_000  # a 12-megapixel phone photo passes; decoding stays within a few 100 MB
NAME = "the image"  # what errors call the uploaded image
DATA_URL = "data:image/"  # what the page sends: data:image/<type>;base64,<bytes>


@dataclass
class Reader:
    """The model the page asks, read the way predict reads: `factor` is the hand-in's (the
    calibrated probabilities and the hand-in file's softmax are both softmax(logits × factor))."""

    model: MyConvNet
    path: Path
    factor: float
    source: str  # where the factor comes from
    # Every image is read in this one thread, one at a time: the decoding's big buffers come and go
    # in one allocator arena, so memory stays flat however many request threads there are.
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "reader"))

    def info(self) -> dict:
        return {"model": str(self.path), "factor": self.factor, "factor_source": self.source}

    def read(self, data: bytes) -> dict:
        """The answer for one image file's bytes; MnistError if they are not a usable image."""
        return self.worker.submit(self._read, data).result()

    def _read(self, data: bytes) -> dict:
        digit = load_digit_bytes(data, NAME, MAX_PIXELS)
        device = next(self.model.parameters()).device
        handin, = answer_batch(self.model, [Path(NAME)], {0: digit}, 10, device, self.factor)
        raw, = answer_batch(self.model, [Path(NAME)], {0: digit}, 10, device, 1.0)
        return {"digit": handin.digit, "doubt": handin.doubt,
                "handin": by_digit(handin.top), "raw": by_digit(raw.top),
                "input": (digit[0] * 255).round().to(torch.uint8).tolist()}


def by_digit(top: tuple[tuple[int, float], ...]) -> list[float]:
    """Ten probabilities in digit order, from (digit, probability) pairs most probable first."""
    return [p for _, p in sorted(top)]


def load_reader(given: Path | None, root: Path) -> Reader:
    """The model (--model, any hw7 file, loaded and refused as grade loads and refuses it; else the
    project's) and its hand-in factor (as predict finds it)."""
    path, _ = paths.model_choice(given, root)
    if given is None and not path.is_file():
        raise MnistError(f"no trained model at {path}: run `dvc repro` in {root.resolve()} first, "
                         "or pass --model FILE")
    model = MyConvNet()
    model.load_state_dict(course.load_checked(path).net.state_dict())
    model.eval()
    factor, source = hand_in_factor(model, path, root)
    return Reader(model, path, factor, source)


class PageError(Exception):
    """A request refused: its HTTP status and the one line that says why and what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def image_bytes(headers, body_file) -> bytes:
    """The image file carried by a POST /api/read request, or PageError."""
    if headers.get_content_type() != "application/json":
        raise PageError(415, f"content type {headers.get_content_type()!r} is not accepted: send "
                             'application/json, {"image": "data:image/png;base64,..."}')
    length = headers.get("Content-Length")
    if length is None:
        raise PageError(411, "no Content-Length: send the body with its length")
    if not length.isdigit():
        raise PageError(400, f"Content-Length {length!r} is not a byte count: send the body's length")
    if int(length) > MAX_BODY:
        raise PageError(413, f"the body is {int(length)} bytes, over the {MAX_BODY // (1 << 20)} MiB "
                             "limit: send a smaller image")
    try:
        request = json.loads(body_file.read(int(length)))
    except ValueError as exc:  # also a body that is not UTF-8
        raise PageError(400, f"the body is not valid JSON ({exc}): send "
                             '{"image": "data:image/png;base64,..."}') from None
    image = request.get("image") if isinstance(request, dict) else None
    if not isinstance(image, str) or not image.startswith(DATA_URL) or ";base64," not in image:
        raise PageError(400, 'the JSON has no "image" data URL: send '
                             '{"image": "data:image/png;base64,..."}')
    try:
        return base64.b64decode(image.split(",", 1)[1], validate=True)
    except binascii.Error:
        raise PageError(400, "the image data URL is not valid base64: send the file's bytes "
                             "base64-encoded") from None


class Handler(BaseHTTPRequestHandler):
    """One request: a page file, the model's description, or an image read."""

    server_version = "mnist-dvc"
    timeout = 30  # seconds a client may stall mid-request before its connection is dropped

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/api/model":
            return self.send_json(200, self.server.reader.info())
        if path not in FILES:
            return self.send_json(404, {"error": f"{path[:100]}: no such file here: the page is at /"})
        name, content_type = FILES[path]
        self.send_body(200, (PAGE / name).read_bytes(), content_type)

    do_HEAD = do_GET

    def do_POST(self):
        path = urlsplit(self.path).path
        if path != "/api/read":
            return self.send_json(404, {"error": f"{path[:100]}: nothing to post here: post images "
                                                 "to /api/read"})
        try:
            answer = self.server.reader.read(image_bytes(self.headers, self.rfile))
        except PageError as exc:
            self.close_connection = True  # an unread body may follow
            return self.send_json(exc.status, {"error": str(exc)})
        except MnistError as exc:
            return self.send_json(422, {"error": str(exc)})
        self.send_json(200, answer)

    def refuse_method(self):
        self.send_json(405, {"error": f"{self.command} is not supported: GET the page, POST to /api/read"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse_method

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line, an unknown method), as JSON."""
        self.close_connection = True
        code = 405 if code == 501 else code  # 501: a method http.server has no do_ for
        self.send_json(code, {"error": f"{message or 'bad request'}: send a plain HTTP request "
                                       "(GET the page, POST to /api/read)"})

    def send_json(self, status: int, body: dict):
        self.send_body(status, json.dumps(body).encode() + b"\n", "application/json")

    def send_body(self, status: int, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400:  # only refusals, not every stroke's request
            super().log_request(code, size)


class PageServer(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for a stalled client

    def __init__(self, address: tuple[str, int], reader: Reader):
        super().__init__(address, Handler)
        self.reader = reader


def make_server(host: str, port: int, reader: Reader) -> PageServer:
    try:
        return PageServer((host, port), reader)
    except OSError as exc:
        raise MnistError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another "
                         "--port (0 picks a free one) or --host") from None
