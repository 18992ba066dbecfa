"""Stage report: reports/run.md, one Markdown page on this run (params that differ from
params.yaml as committed, test metrics, best epoch, time, precision, machine, per-class table, figures)."""

import yaml

from mnist_dvc import metrics_files, paths, provenance, results, run_report
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_stage
from mnist_dvc.mnist import source_kind
from mnist_dvc.params import load_params


def main() -> None:
    params = load_params()
    # The defaults are params.yaml as git HEAD holds it: what `dvc exp run -S` changed is the rest.
    committed = provenance.committed(str(paths.PARAMS))
    defaults = yaml.safe_load(committed) if committed else None
    read = metrics_files.read_record
    text = run_report.render(params, defaults, read(paths.TRAIN_METRICS, results.TrainMetrics),
                             read(paths.TEST_METRICS, results.EvaluateMetrics),
                             read(paths.TIMING, results.Timing),
                             metrics_files.read_records(paths.CLASSES, results.DigitMetrics),
                             run_report.figure_links(paths.FIGURES), source_kind(paths.RAW))
    write_text(paths.RUN_REPORT, text)
    print(f"report: {paths.RUN_REPORT}")


if __name__ == "__main__":
    run_stage(main)
