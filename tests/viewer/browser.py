"""A real headless Chromium for the browser viewer's tests (Selenium + the system chromedriver).

Debian's `chromium` + `chromium-driver` (scripts/setup.sh installs them as root); Selenium is
pointed at /usr/bin/chromedriver, so it never downloads a browser. Without a GPU, Chromium draws
WebGL with SwiftShader (software), which the flags below allow. Tests skip with the reason when
any piece is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time

import numpy as np

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
    "--window-size=1400,800",
)


def find_browser() -> tuple[str | None, str | None, str]:
    """(chromium, chromedriver, why not) for the tests."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, None, "selenium not installed (pip install -e .[test])"
    browser = os.environ.get("POINTSEG_CHROMIUM") or next(
        (p for p in map(shutil.which, CHROMIUM_NAMES) if p), None
    )
    driver = os.environ.get("POINTSEG_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return (
            browser,
            driver,
            (
                "no headless browser: apt-get install -y chromium chromium-driver "
                "(scripts/setup.sh does it as root)"
            ),
        )
    return browser, driver, ""


class Browser:
    """One Chromium session; `load` waits until the viewer has drawn its first frame."""

    def __init__(self, browser: str, driver: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="pointseg-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for f in (*FLAGS, f"--user-data-dir={self.profile}"):
            opts.add_argument(f)
        self.driver = webdriver.Chrome(service=Service(driver), options=opts)
        self.driver.set_page_load_timeout(60)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def offline(self, on: bool = True) -> None:
        """Cut the network (Chrome DevTools), as a laptop on a train."""
        d = self.driver
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": on, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def load(self, url: str, timeout: float = 60) -> None:
        self.driver.get(url)
        self.wait(
            "return (window.pointseg && (window.pointseg.ready || window.pointseg.error))", timeout
        )
        err = self.js("return window.pointseg.error")
        assert err is None, f"the page failed: {err}"

    def wait(self, script: str, timeout: float = 30):
        end = time.monotonic() + timeout
        while True:
            got = self.js(script)
            if got:
                return got
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for: {script}")
            time.sleep(0.05)

    @staticmethod
    def wait_for_file(path, timeout: float = 30):
        """A downloaded file, once complete (Chromium writes `<name>.crdownload` first)."""
        end = time.monotonic() + timeout
        while not (path.is_file() and path.stat().st_size > 0):
            if time.monotonic() > end:
                raise AssertionError(f"no download at {path}")
            time.sleep(0.05)
        return path

    def frames(self) -> int:
        return int(self.js("return window.pointseg.frames"))

    def after(self, action) -> None:
        """Run `action` (a click, a key) and wait until the page has drawn a new frame."""
        before = self.frames()
        action()
        self.wait(f"return window.pointseg.frames > {before}")

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def panels(self) -> list[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) of each panel in screenshot pixels (label strip excluded)."""
        rects = self.js(
            "const c = document.getElementById('gl').getBoundingClientRect();"
            "return [c.left, c.top, window.devicePixelRatio, window.pointseg.panelRects()];"
        )
        left, top, dpr, panels = rects
        out = []
        for p in panels:
            x0, y0 = (left + p["x"]) * dpr, (top + p["y"] + 26) * dpr
            out.append(
                (
                    int(x0) + 1,
                    int(y0),
                    int(x0 + p["w"] * dpr) - 1,
                    int((top + p["y"] + p["h"]) * dpr) - 1,
                )
            )
        return out


def colour_counts(img: np.ndarray, box, colours) -> np.ndarray:
    """How many pixels of `img` inside `box` have each of `colours` exactly."""
    x0, y0, x1, y1 = box
    sub = img[y0:y1, x0:x1].reshape(-1, 3).astype(np.int32)
    key = (sub[:, 0] << 16) | (sub[:, 1] << 8) | sub[:, 2]
    want = np.asarray(colours, dtype=np.int32).reshape(-1, 3)
    wkey = (want[:, 0] << 16) | (want[:, 1] << 8) | want[:, 2]
    uniq, counts = np.unique(key, return_counts=True)
    lookup = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    return np.array([lookup.get(int(k), 0) for k in wkey])
