"""`dvc plots diff`'s page draws offline: the project's template (plots/offline.html, named by
plots.html_template in .dvc/config) loads Vega, Vega-Lite and Vega-Embed from plots/vendor/, not
from a CDN. The page is opened in headless Chromium (Debian's chromium and chromium-driver, as in
tests/test_page.py) with every host name unresolvable and a dead proxy: no network at all."""

import json
import re
import subprocess

import pytest
import yaml
from browser import OFFLINE, chromium
from repo_helpers import ROOT, make_repo, run
from selenium.webdriver.support.ui import WebDriverWait

# Builds a git + DVC repo: left out by `make test-fast`.
pytestmark = pytest.mark.e2e

VENDOR = ROOT / "plots/vendor"
TEMPLATE = ROOT / "plots/offline.html"
# The vega plots dvc.yaml defines (top-level `plots:`), one chart each on the page.
CHARTS = [next(iter(plot)) for plot in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]]
BASELINE = ["metrics", "figures"]  # the committed CSVs and PNGs `dvc plots diff HEAD` reads
EXP = "shorter"  # stands for `<exp>`: a revision whose history.csv lacks the last epoch


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A throwaway copy of the project with the committed baseline's metrics and figures (git
    HEAD of this clone), and a branch EXP whose curves stop one epoch earlier."""
    path = make_repo(tmp_path_factory.mktemp("plots") / "repo")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", *BASELINE],
                             check=True, capture_output=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True, timeout=60)
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "baseline")
    run(path, "git", "checkout", "-qb", EXP)
    history = path / "metrics/history.csv"
    history.write_text("".join(history.read_text().splitlines(keepends=True)[:-1]))
    run(path, "git", "commit", "-qam", "one epoch fewer")
    run(path, "git", "checkout", "-q", "-")
    return path


@pytest.fixture(scope="module")
def browser():
    with chromium(*OFFLINE, console_log=True) as chrome:
        yield chrome


def page_of(done: subprocess.CompletedProcess) -> str:
    """The file:// address of the page `dvc plots` printed it wrote."""
    found = re.search(r"file://\S+/index\.html", done.stdout)
    assert found, f"dvc plots wrote no page: {done.stdout}{done.stderr}"
    return found.group(0)


def outcome(driver) -> dict | None:
    """Once the page has loaded and every chart has drawn (vega-embed put a canvas or an svg in
    it) or said it could not, or Vega-Embed never loaded: the versions of Vega, Vega-Lite and
    Vega-Embed loaded, the charts drawn, the charts' complaints, the painted pixels of each canvas
    and the scripts the page loaded; None while the page or Vega is still at work."""
    return driver.execute_script("""
        if (document.readyState !== 'complete') return null;
        const drawn = Array.from(document.querySelectorAll('.vega-embed'))
            .filter(e => e.querySelector('canvas, svg')).map(e => e.id);
        const missing = Array.from(document.querySelectorAll('.vega-missing')).map(e => e.textContent);
        const loaded = typeof vegaEmbed !== 'undefined';
        if (loaded && drawn.length + missing.length < arguments[0]) return null;
        const versions = {vega: window.vega?.version, 'vega-lite': window.vegaLite?.version,
                          'vega-embed': window.vegaEmbed?.version};
        const painted = Array.from(document.querySelectorAll('.vega-embed canvas')).map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 250 || d[i + 1] < 250)) n++;
            return n;
        });
        return {versions, drawn, missing, painted, scripts: Array.from(document.scripts).map(s => s.src)};
    """, len(CHARTS))


def open_page(driver, url: str) -> dict:
    driver.get_log("browser")  # forget an earlier page's messages
    driver.get(url)
    return WebDriverWait(driver, 60).until(outcome, f"the charts of {url} neither drew nor failed")


def test_plots_diff_draws_offline_as_the_readme_types_it(repo, browser):
    """`dvc plots diff HEAD <exp>`, typed as in the README from the project's root, writes a page
    whose five charts draw with no network: each holds a painted canvas, every script comes from
    plots/vendor/ in the project, the console has no error. Catches the template left unset
    (DVC's page loads Vega from cdn.jsdelivr.net: blank offline), script paths relative to the
    project instead of to dvc_plots/ (nothing loads), and other versions than dvc-render names."""
    page = page_of(run(repo, "dvc", "plots", "diff", "HEAD", EXP))
    assert page == (repo / "dvc_plots/index.html").as_uri()
    seen = open_page(browser, page)
    assert seen["versions"] == cdn_versions(), "Vega did not load from plots/vendor/"
    assert seen["missing"] == [], seen["missing"][0]
    assert sorted(seen["drawn"]) == sorted(CHARTS)
    assert len(seen["painted"]) == len(CHARTS) and min(seen["painted"]) > 1000, seen["painted"]
    vendor = (repo / "plots/vendor").as_uri() + "/"
    assert [s for s in seen["scripts"] if s and not s.startswith(vendor)] == []
    errors = [m["message"] for m in browser.get_log("browser") if m["level"] == "SEVERE"]
    assert errors == []


def test_a_page_written_elsewhere_says_why_it_is_blank(repo, browser):
    """With -o (or from a subfolder) the page is not in dvc_plots/ and cannot find plots/vendor/:
    each chart then says so and how to get it. Catches a page that stays silently blank."""
    page = page_of(run(repo, "dvc", "plots", "diff", "HEAD", EXP, "-o", "out/elsewhere"))
    seen = open_page(browser, page)
    assert seen["versions"]["vega"] is None and seen["drawn"] == []
    assert len(seen["missing"]) == len(CHARTS)
    assert "dvc_plots/ in the project's root" in seen["missing"][0]


def cdn_versions() -> dict[str, str]:
    """The versions dvc-render's own page loads from the CDN (its specs are written for them)."""
    from dvc_render.vega import VegaRenderer

    return dict(re.findall(r"cdn\.jsdelivr\.net/npm/([\w-]+)@([\d.]+)", VegaRenderer.SCRIPTS))


def test_the_shipped_scripts_are_the_versions_dvc_render_names():
    """The template loads the very versions dvc-render would fetch, each from its npm package's
    folder holding the package's licence and package.json. Catches a dvc-render upgrade whose
    specs need a newer Vega than the one shipped (re-vendor: plots/README.md), and a script the
    template names that is not in the repo."""
    want = cdn_versions()
    assert set(want) == {"vega", "vega-lite", "vega-embed"}, want
    loaded = re.findall(r'<script src="\.\./plots/vendor/([\w-]+)-([\d.]+)/([\w.-]+)"', TEMPLATE.read_text())
    assert {name: version for name, version, _ in loaded} == want
    for name, version, script in loaded:
        folder = VENDOR / f"{name}-{version}"
        assert (folder / script).is_file() and (folder / "LICENSE").is_file()
        package = json.loads((folder / "package.json").read_text())
        assert (package["name"], package["version"]) == (name, version)
        assert package["jsdelivr"] == f"build/{script}"  # the file the CDN serves for name@version
    assert sorted(p.name for p in VENDOR.iterdir()) == sorted(f"{n}-{v}" for n, v in want.items())


def test_dvc_uses_the_template():
    """.dvc/config names the template (relative to .dvc/, as DVC reads it), and the template keeps
    DVC's placeholder for the charts but not `{scripts}`, DVC's CDN tags."""
    config = (ROOT / ".dvc/config").read_text()
    found = re.search(r"^\s*html_template\s*=\s*(\S+)", config, flags=re.M)
    assert found and (ROOT / ".dvc" / found.group(1)).resolve() == TEMPLATE
    assert "{plot_divs}" in TEMPLATE.read_text() and "{scripts}" not in TEMPLATE.read_text()
