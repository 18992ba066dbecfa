"""A page to draw a digit on, read by the model as you draw (a user command).

    mnist-dvc serve                          # the project's model, at http://127.0.0.1:8000/
    mnist-dvc serve --model hw7_21000000_zhangsan.pth --port 8080

Draw with a mouse or a finger, or upload an image file: the page shows the 28×28 image the model
receives (predict's preprocessing), the digit, the ten calibrated probabilities, and the chance the
course's sampling grader marks the drawing right, for the raw model and the hand-in side by side.
--model takes any hw7 file (loaded and refused as grade loads and refuses it). The server listens
on 127.0.0.1 only unless --host says otherwise, writes no file, and stops on Ctrl-C.
"""

import argparse
import sys
from pathlib import Path

from mnist_dvc import page_server, paths
from mnist_dvc.cli import run_command

# What Ctrl-C leaves behind (serve says it itself; this is for a Ctrl-C while the model loads).
INTERRUPTED = "the server did not start; nothing was written"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help=f"weights or any hw7 file (default: the project's {paths.MODEL})")
    parser.add_argument("--port", type=int, default=8000, metavar="N",
                        help="port to listen on (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: "
                             "every network the machine is on)")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: choose 0 to 65535")
    reader = page_server.load_reader(args.model, paths.project_root())
    server = page_server.make_server(args.host, args.port, reader)
    host, port = server.server_address[:2]
    print(f"serve: {reader.path}, hand-in factor x{reader.factor:g} ({reader.source})")
    print(f"serve: open http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("serve: stopped; nothing was written")
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.serve"  # what --help shows; `mnist-dvc serve` sets its own
    run_command(main, INTERRUPTED)
