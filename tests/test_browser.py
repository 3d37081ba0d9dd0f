"""The tutorials in a real JupyterLab, in a real (headless) browser.

Starts JupyterLab on 127.0.0.1 with a token, serving a *copy* of ``notebooks/`` (so autosave
cannot dirty the committed, stripped notebooks), drives Debian's ``chromium`` through Python
Playwright (no browser download), runs every tutorial, and checks that outputs and widgets
render: no "Error displaying widget", no traceback. Screenshots go to a temporary folder whose
path the test prints.

Skips, with the reason in pytest's summary, only when Chromium or Playwright truly is not
installed (``make test`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "iommu-lab-browser-test"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on loopback, isolated from the user's Jupyter settings."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get); browser test not run")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed; browser test not run")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = base / "settings"
    # Silence the "get notified about Jupyter news?" toast, which covers the notebook.
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # JupyterLab 4 virtualises long notebooks: cells outside the viewport are not rendered, so
    # their outputs could not be checked. Render every cell.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"})
    )
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    port = _free_port()
    log = open(base / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--ServerApp.open_browser=False", "--LabApp.news_url=None",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            pytest.fail(f"JupyterLab did not start; log:\n{(base / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield {"url": url, "root": root, "shots": base / "screenshots"}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def run_notebook(browser, lab, name: str, *, timeout_s: float = 180):
    """Open ``name`` in JupyterLab, Run All, wait for the kernel to finish; return the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab['url']}/lab/tree/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus", timeout=60_000)
    time.sleep(1.0)  # the kernel connects after the first paint
    page.click(".jp-Notebook")
    page.keyboard.press("Escape")
    page.click("text=Run", timeout=10_000)
    page.click("text=Run All Cells", timeout=10_000)
    code_cells = page.locator(".jp-CodeCell").count()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        done = [p for p in prompts if p.strip() not in ("[ ]:", "[*]:", "")]
        if len(done) == code_cells and not any("*" in p for p in prompts):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{name}: not every cell finished within {timeout_s} s (prompts: {prompts})")
    time.sleep(1.0)  # widget views render after the kernel reports idle
    return page


def assert_rendered_cleanly(page, name: str):
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    tracebacks = [e for e in errors if "Traceback" in e or "Error" in e]
    assert not tracebacks, f"{name}: errors in outputs:\n" + "\n".join(tracebacks)[:3000]
    body = page.inner_text(".jp-Notebook")
    assert "Error displaying widget" not in body, f"{name}: a widget failed to render"
    assert "Traceback" not in body, f"{name}: a traceback is shown"


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_tutorial_runs_and_renders_in_jupyterlab(browser, lab, name):
    page = run_notebook(browser, lab, name)
    try:
        assert_rendered_cleanly(page, name)
        # Every tutorial shows at least one figure or rich output.
        assert page.locator(".jp-OutputArea-output img, .jp-OutputArea-output svg, .jp-RenderedHTMLCommon table, .widget-box, .jupyter-widgets").count() > 0, \
            f"{name}: no figure, table or widget was rendered"
        lab["shots"].mkdir(exist_ok=True)
        shot = lab["shots"] / f"{Path(name).stem}.png"
        page.screenshot(path=str(shot), full_page=False)
        print(f"screenshot: {shot}")
    finally:
        page.close()


def test_typing_an_iova_into_the_walk_explorer_changes_the_walk(browser, lab):
    """The walk explorer in tutorial 03: type an IOVA, press Enter, the walk shown changes."""
    page = run_notebook(browser, lab, "03-page-table-walks.ipynb")
    try:
        assert_rendered_cleanly(page, "03-page-table-walks.ipynb")
        view = page.locator(".il-walk-view").last
        view.wait_for(timeout=30_000)
        before = view.inner_text()
        # ipywidgets.Image puts its CSS class on the <img> element itself.
        figure = page.locator("img.il-walk-figure").last
        figure_before = figure.get_attribute("src")
        box = page.locator(".il-walk-iova input").last
        box.scroll_into_view_if_needed()
        box.fill("0x20_1234")
        box.press("Enter")
        deadline = time.monotonic() + 30
        while view.inner_text() == before and time.monotonic() < deadline:
            time.sleep(0.3)
        after = view.inner_text()
        assert after != before, "the walk view did not change after entering a new IOVA"
        assert "201234" in after.replace("_", ""), "the walk view does not show the IOVA typed"
        while figure.get_attribute("src") == figure_before and time.monotonic() < deadline + 30:
            time.sleep(0.3)
        assert figure.get_attribute("src") != figure_before, "the walk figure was not redrawn"
        lab["shots"].mkdir(exist_ok=True)
        shot = lab["shots"] / "walk-explorer.png"
        view.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
    finally:
        page.close()


#: One cell per explorer, in a notebook written beside the tutorials' copies (never committed).
EXPLORER_CELLS = (
    "import iommu_lab.widgets as widgets\nwalk = widgets.WalkExplorer()\nwalk",
    "nesting = widgets.NestingExplorer()\nnesting",
    "layout = widgets.LayoutExplorer()\nlayout",
    "plats = widgets.PlatformExplorer(['intel-vtd-48'])\nplats",
    "from iommu_lab.dma import trace as T\nreplay = widgets.ReplayExplorer(T.streaming(3 << 30, chunk=1 << 20))\nreplay",
    # A device attached to an IOAS through an automatic HWPT: DEVICE 1, IOAS 2, HWPT_PAGING 3.
    "import itertools\nfrom iommu_lab.iommufd import IommufdContext\nctx = IommufdContext()\n"
    "ctx.attach(ctx.bind('intel-vtd-48'), ctx.ioas_alloc())\nobjs = widgets.ObjectExplorer(ctx)\n"
    "checks = itertools.count(1)\nobjs",
    # Re-run from the browser after each step: does what the explorer drew equal the model now?
    "c = objs.context\ndrawn = objs.shown == (c.objects(), c.attachments()) and objs.table.value == c._repr_html_()\n"
    "print(f'check {next(checks)}: drawn is model: {drawn}; objects: ' + ', '.join(r.label for r in c.objects()))",
)


def _until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"within {timeout:.0f} s: {what}")
        time.sleep(0.3)


def _enter(page, selector: str, text: str) -> None:
    box = page.locator(selector).last
    box.scroll_into_view_if_needed()
    box.fill(text)
    box.press("Enter")


def _shows_no_image(img) -> bool:
    src = img.get_attribute("src")
    return not img.is_visible() or not src or img.evaluate("e => e.naturalWidth") == 0


def test_each_explorer_drops_what_a_failed_input_made_stale(browser, lab):
    """Every explorer, in the browser, through a failed input: no old view stays under new inputs."""
    import nbformat

    name = "explorers-failed-inputs.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in EXPLORER_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab["root"] / name)
    page = run_notebook(browser, lab, name)
    try:
        assert_rendered_cleanly(page, name)
        text = lambda sel: page.locator(sel).last.inner_text()  # noqa: E731

        # Walk: an unreadable IOVA marks the walk stale; a new format then clears it.
        _enter(page, ".il-walk-iova input", "0x12zz")
        _until(lambda: "stale" in text(".il-walk-summary"), "the walk explorer marks its walk stale")
        page.locator(".il-walk-family select").last.select_option("riscv")
        _until(lambda: "no walk in riscv-sv39" in text(".il-walk-summary"), "the old format's walk is cleared")
        assert "vtd-ss" not in text(".il-walk-view")
        assert _shows_no_image(page.locator("img.il-walk-figure").last), "the old format's walk figure is shown"

        # Nesting: a platform without nesting is refused and the picker goes back to the pair shown.
        platform = page.locator(".il-nesting-platform select").last
        platform.select_option("power9-pseries")
        _until(lambda: "EOPNOTSUPP" in text(".il-nesting-error"), "the refused platform is reported")
        _until(lambda: platform.input_value() != "power9-pseries", "the picker leaves the refused platform")
        assert "vtd-ss-4level" in text(".il-nesting-pair") and "still showing" in text(".il-nesting-error")

        # Layout: a refused map drops the status of the map before it.
        _enter(page, ".il-layout-iova input", "0x0")
        page.locator("button.il-layout-map").last.click()
        _until(lambda: "mapped" in text(".il-layout-status"), "the first map is reported")
        page.locator("button.il-layout-map").last.click()
        _until(lambda: "EEXIST" in text(".il-layout-error"), "the second map is refused with EEXIST")
        _until(lambda: "mapped" not in text(".il-layout-status"), "the old status is dropped")

        # Platforms: a comparison that cannot run removes the previous one.
        _enter(page, ".il-platforms-ram input", "4G")
        page.locator("button.il-platforms-compare").last.click()
        _until(lambda: "vtd-ss-4level" in text(".il-platforms-compare-table"), "the comparison is shown", 60)
        _enter(page, ".il-platforms-ram input", "lots")
        page.locator("button.il-platforms-compare").last.click()
        _until(lambda: "lots" in text(".il-platforms-error"), "the unreadable RAM size is reported")
        _until(lambda: "vtd-ss-4level" not in text(".il-platforms-compare-table"), "the old comparison is gone")

        # Replay: a platform that cannot hold the trace clears the last run's summary and figure.
        page.locator(".il-replay-platform select").last.select_option("power9-pseries")
        _until(lambda: "ENOSPC" in text(".il-replay-error"), "the refused replay is reported")
        _until(lambda: "intel" not in text(".il-replay-summary"), "the last run's summary is gone")
        assert _shows_no_image(page.locator("img.il-replay-figure").last), "the last run's figure is shown"

        # Objects: destroying an IOAS an automatic HWPT still holds is refused with EBUSY; the graph
        # drawn stays the model's (nothing half-done); a detach then changes the graph.
        check = page.locator(".jp-CodeCell").last

        def checked(n: int) -> str:
            check.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")
            _until(lambda: f"check {n}:" in check.locator(".jp-OutputArea").inner_text(), f"the model check {n} ran")
            return check.locator(".jp-OutputArea").inner_text().strip()

        figure = page.locator("img.il-objects-figure").last
        figure.scroll_into_view_if_needed()
        graph_before = figure.get_attribute("src")
        page.locator(".il-objects .widget-dropdown:has(label:text-is('object')) select").last.select_option(label="2: IOAS")
        page.locator("button.il-objects-destroy").last.click()
        _until(lambda: text(".il-objects-error").startswith("EBUSY"), "the refused DESTROY is shown with its errno")
        assert "HWPT_PAGING 3" in text(".il-objects-error") and "refused" in text(".il-objects-status")
        assert checked(2).endswith("drawn is model: True; objects: DEVICE 1 dev0, IOAS 2, HWPT_PAGING 3")
        assert figure.get_attribute("src") == graph_before, "a refused step changed the drawn graph"
        assert "HWPT_PAGING" in text(".il-objects-table") and "IOAS" in text(".il-objects-table")
        page.locator("button.il-objects-detach").last.click()
        _until(lambda: "detached device 1" in text(".il-objects-status"), "the detach is reported")
        # The automatic HWPT goes with its last attachment, in the model and in what is drawn.
        assert checked(3).endswith("drawn is model: True; objects: DEVICE 1 dev0, IOAS 2")
        assert text(".il-objects-error") == "", "the old refusal is still shown after a success"
        assert "HWPT_PAGING" not in text(".il-objects-table"), "the table still shows the freed HWPT"
        _until(lambda: figure.get_attribute("src") != graph_before, "the graph is redrawn after the detach")
        lab["shots"].mkdir(exist_ok=True)
        shot = lab["shots"] / "explorers-failed-inputs.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
    finally:
        page.close()
