import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HYPERFCN_SHARED", ROOT.parent / "shared"))
FLOWERS = SHARED / "datasets" / "flowers"
FLOWERS_SAMPLE = SHARED / "datasets" / "flowers-original-sample"

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The decoded cache of every test (and the commands they run) lives in one folder of this
# session's, never the user's ~/.cache; tests that read the same data share its entries.
_OWN_CACHE = "HYPERFCN_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["HYPERFCN_CACHE_DIR"] = tempfile.mkdtemp(prefix="hyperfcn-test-cache-")


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE:
        shutil.rmtree(os.environ["HYPERFCN_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def flowers() -> Path:
    if not (FLOWERS / "train").is_dir():
        pytest.skip(f"{FLOWERS} is missing: the integration tests read the flowers photos "
                    f"from ../shared (or HYPERFCN_SHARED)")
    return FLOWERS


@pytest.fixture(autouse=True)
def _fast_tier_starts_nothing(request, monkeypatch):
    """The fast tier (plain `pytest`) starts no Ray cluster and no process: a test that
    needs either is marked integration (`pytest -m integration`)."""
    if request.node.get_closest_marker("integration"):
        return
    import subprocess

    # imported first: Ray subclasses subprocess.Popen, and the frameworks' imports probe
    # the machine with a process or two
    import keras  # noqa: F401
    import ray

    def refuse(what: str):
        def call(*args, **kwargs):
            raise AssertionError(f"a fast-tier test called {what}: mark it "
                                 f"@pytest.mark.integration")
        return call

    class NoPopen(subprocess.Popen):
        __init__ = refuse("subprocess.Popen")

    monkeypatch.setattr(subprocess, "Popen", NoPopen)
    monkeypatch.setattr(ray, "init", refuse("ray.init"))


@pytest.fixture
def deadline():
    """Fail (rather than hang) if the body takes longer than the given seconds."""

    def arm(seconds: int):
        def boom(*_):
            raise TimeoutError(f"took longer than {seconds} s (hang?)")

        signal.signal(signal.SIGALRM, boom)
        signal.alarm(seconds)

    yield arm
    signal.alarm(0)


def make_packed(n_per_class=6, classes=2, shapes=((16, 16), (16, 24)), seed=0):
    """Tiny bucketed data whose classes differ in brightness (learnable in 1-2 epochs)."""
    from hyperfcn.data.buckets import pack, plan_buckets

    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for c in range(classes):
        for i in range(n_per_class):
            h, w = shapes[i % len(shapes)]
            base = 40 + 170 * c
            imgs.append(np.clip(rng.normal(base, 20, (h, w, 3)), 0, 255).astype(np.uint8))
            labels.append(c)
    plan = plan_buckets([im.shape[:2] for im in imgs], 4)
    return pack(imgs, labels, plan)


@pytest.fixture
def tiny_data():
    from hyperfcn.trial import TrialData

    return TrialData(classes=["dark", "light"], train={16: make_packed(8)},
                     val={16: make_packed(4, seed=1)})


ARTIFACTS = Path(os.environ.get("HYPERFCN_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = os.environ.get("HYPERFCN_CHROMIUM", "/usr/bin/chromium")


def open_in_chromium(html_path: Path, screenshot: str) -> dict:
    """Load a page in headless Chromium; return its console errors, page errors and images.

    .ci/run installs Debian's chromium; without it the test is skipped with the reason.
    """
    missing = None
    try:
        from playwright import sync_api
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if missing:
        if os.environ.get("HYPERFCN_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete "
                "&& i.naturalWidth > 0, w: i.naturalWidth}))")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
            text = page.inner_text("body")
        finally:
            browser.close()
    return {"errors": errors, "images": images, "text": text,
            "external": [u for u in requests if not u.startswith(("file:", "data:"))]}


@pytest.fixture(scope="session")
def small_space(tmp_path_factory):
    """The default space with a network a tenth of the recipe's cost: the tests that run
    the search's machinery (interrupts, resume, budgets, BOHB, JAX) need its trials to
    train, not to train well, and at the recipe's width each epoch costs ~20 s on 2 cores."""
    import yaml

    from hyperfcn.space import default_space_text

    raw = yaml.safe_load(default_space_text())
    raw["parameters"].update(blocks=2, convs_per_block=1, max_filters=32,
                             filters={"choice": [8, 16]}, head={"choice": {
                                 "dense": {"dense_units": {"choice": [16, 32]}},
                                 "conv": {"conv_head_filters": {"choice": [16, 32]}}}})
    raw["defaults"].update(blocks=2, convs_per_block=1, filters=16, conv_head_filters=32)
    path = tmp_path_factory.mktemp("space") / "small_space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
