"""Stage report: reports/run.md, one Markdown page on this run (params that differ from the
defaults, test metrics, best epoch, time, precision, machine, per-class table, figures)."""

from mnist_dvc import paths, reports, run_report
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_stage
from mnist_dvc.params import load_params


def main() -> None:
    params = load_params()
    text = run_report.render(params, reports.read_json(paths.TRAIN_METRICS),
                             reports.read_json(paths.TEST_METRICS), reports.read_json(paths.TIMING),
                             reports.read_csv(paths.CLASSES), run_report.figure_links(paths.FIGURES))
    write_text(run_report.REPORT, text)
    print(f"report: {run_report.REPORT}")


if __name__ == "__main__":
    run_stage(main)
