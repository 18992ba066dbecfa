"""Stage report: reports/run.md, one Markdown page on this run (params that differ from
params.yaml as committed, test metrics, best epoch, time, precision, machine, per-class table, figures)."""

import yaml

from mnist_dvc import metrics_files, paths, provenance, run_report
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_stage
from mnist_dvc.mnist import source_kind
from mnist_dvc.params import load_params


def main() -> None:
    params = load_params()
    # The defaults are params.yaml as git HEAD holds it: what `dvc exp run -S` changed is the rest.
    committed = provenance.committed(str(paths.PARAMS))
    defaults = yaml.safe_load(committed) if committed else None
    read_json = metrics_files.read_json
    text = run_report.render(params, defaults, read_json(paths.TRAIN_METRICS), read_json(paths.TEST_METRICS),
                             read_json(paths.TIMING), metrics_files.read_csv(paths.CLASSES),
                             run_report.figure_links(paths.FIGURES), source_kind(paths.RAW))
    write_text(paths.RUN_REPORT, text)
    print(f"report: {paths.RUN_REPORT}")


if __name__ == "__main__":
    run_stage(main)
