"""An exported model run where the app runs it: onnxruntime-web (WASM backend, one thread) in headless
Chromium, driven through the reference page (web/index.html) and its `window.quranft` API.

`Browser` serves the page and an export's folder on a free localhost port (http.server in a
thread), starts Debian's Chromium through its chromedriver (Selenium; nothing downloads a
browser) and calls the page: load a model by URL, run 16 kHz float32 audio to log-probs (base64
float32 both ways). `BrowserModel` is an OnnxModel whose log-probs come from the browser, so that
the benchmark's own code path (models.transcribe, models.windowed) runs on them unchanged; its
onnxruntime session in Python stays at hand as the reference.
"""

from __future__ import annotations

import base64
import functools
import http.server
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quranft.errors import QuranftError
from quranft.models.onnx_model import OnnxModel
from quranft.models.windowed import Windowing, windowed_log_probs

# the repository's web/ (the page and its node_modules), beside src/
WEB_DIR = Path(__file__).resolve().parents[3] / "web"
ORT_DIST = Path("node_modules/onnxruntime-web/dist")
MODELS_URL = "/models/"  # where the served export folder's files are
# As the probe found them to work here: no GPU, no network, no first-run or background work.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
SCRIPT_TIMEOUT_SECONDS = 600  # one call of the page: a real-size model's load or a long clip
PAGE_START_SECONDS = 30  # the page's modules (onnxruntime-web among them) loaded from localhost


class BrowserError(QuranftError, RuntimeError):
    """No browser to run in, no page to run, or a call of the page that failed; the message says which."""


def find_chromium() -> tuple[str, str]:
    """Debian's chromium and its chromedriver, or an error saying how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None)
        raise BrowserError(f"no {missing} on PATH: install Debian's chromium and chromium-driver "
                           "(scripts/install_system_deps.sh does)")
    return browser, driver


def chromium_available() -> bool:
    try:
        find_chromium()
    except BrowserError:
        return False
    return True


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The page's folder, and the model folder under MODELS_URL; each request path counted."""

    def __init__(self, *args, web_dir: Path, models_dir: Path | None, requests: list[tuple[str, str]], **kwargs):
        self.models_dir, self.requests = models_dir, requests
        super().__init__(*args, directory=str(web_dir), **kwargs)

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if self.models_dir is not None and clean.startswith(MODELS_URL):
            return str(self.models_dir / Path(clean[len(MODELS_URL):]).name)
        return super().translate_path(path)

    def send_head(self):
        self.requests.append((self.command, self.path.split("?", 1)[0]))
        return super().send_head()

    def log_message(self, format, *args):  # the job's log gets the check's lines, not every request
        pass


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(bytearray(base64.b64decode(text)), dtype="<f4").reshape(shape)  # writable, as onnxruntime's


@dataclass
class PageRun:
    """One call of the graph in the page: the samples it took, its run time and the page's transcript."""
    samples: int
    ms: float
    text: str


class Browser:
    """Headless Chromium on the reference page, served with `models_dir` under /models/; use as a
    context manager (the browser, its profile and the server go at the end)."""

    def __init__(self, models_dir: str | Path | None = None, web_dir: str | Path = WEB_DIR):
        self.web_dir = Path(web_dir)
        self.models_dir = None if models_dir is None else Path(models_dir)
        if not (self.web_dir / "index.html").is_file() or not (self.web_dir / ORT_DIST).is_dir():
            raise BrowserError(f"{self.web_dir}: no page, or no onnxruntime-web in {ORT_DIST} (run `npm ci` there; "
                               "scripts/setup_env.sh does)")
        self.requests: list[tuple[str, str]] = []  # (method, path) of each request the server answered
        self.server = self.driver = self.profile = None

    def __enter__(self) -> Browser:
        browser, driver = find_chromium()
        handler = functools.partial(_Handler, web_dir=self.web_dir, models_dir=self.models_dir, requests=self.requests)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.profile = tempfile.mkdtemp(prefix="quranft-chromium-")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        try:
            self.driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        except Exception as error:  # selenium's own exception types: say what failed, in one line
            self.__exit__()
            raise BrowserError(f"{browser} did not start through {driver}: {error}") from error
        self.driver.set_script_timeout(SCRIPT_TIMEOUT_SECONDS)
        self.open_page()
        return self

    def open_page(self) -> None:
        """(Re)open the page, as a new visit does: what it keeps is only what IndexedDB holds."""
        self.driver.get(f"{self.url}/index.html")
        self.call(f"""const started = Date.now();
            await new Promise((resolve, reject) => {{
              const wait = () => window.quranft ? resolve()
                : Date.now() - started > {PAGE_START_SECONDS * 1000} ? reject(new Error("the page's modules did not load"))
                : setTimeout(wait, 20);
              wait();
            }});""")

    def __exit__(self, *exc) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def call(self, body: str, *args):
        """Run `body` as an async function's body in the page (arguments as `arguments`); its result,
        or a BrowserError with the page's message."""
        from selenium.common.exceptions import WebDriverException

        try:
            return self.driver.execute_script(f"return (async function() {{ {body} }}).apply(null, arguments);", *args)
        except WebDriverException as error:
            raise BrowserError(f"the page failed: {error.msg or error}") from error

    def versions(self) -> dict[str, str]:
        import selenium

        return {"chromium": self.driver.capabilities.get("browserVersion"),
                "chromedriver": self.driver.capabilities.get("chrome", {}).get("chromedriverVersion", "").split(" ")[0],
                "onnxruntime_web": self.call("return window.quranft.ortVersion;"),
                "selenium": selenium.__version__}

    def load(self, url: str, options: dict | None = None) -> dict:
        """Load the model at `url` (relative to the page) in the page, with onnxruntime-web's
        session `options` over the page's own: its load time in ms and whether it came from the
        network or the page's IndexedDB cache."""
        return self.call("return await window.quranft.load(arguments[0], arguments[1]);", url, options or {})

    def run(self, audio: np.ndarray) -> tuple[np.ndarray, PageRun]:
        """One clip of 16 kHz mono float32 audio through the loaded model in the page."""
        result = self.call("return await window.quranft.logProbs(arguments[0]);", _encode(audio))
        return _decode(result["data"], (result["frames"], result["classes"])), PageRun(len(audio), result["ms"],
                                                                                     result["text"])

    def transcribe_url(self, url: str) -> dict:
        """A recording by URL through the page's own path: decoded, resampled, run, decoded to text."""
        return self.call("return await window.quranft.transcribeUrl(arguments[0]);", url)


class BrowserModel(OnnxModel):
    """An export whose log-probs come from the page in `browser` (loaded there by `load`); its
    Python onnxruntime session (one thread) is the reference (`python_log_probs`). Each call of
    the page is kept in `runs`."""

    def __init__(self, path: str | Path, browser: Browser):
        super().__init__(path, threads=1)
        self.browser = browser
        self.runs: list[PageRun] = []

    def load(self) -> dict:
        return self.browser.load(MODELS_URL + self.path.name)

    def log_probs(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each clip's log-probs computed in the browser, one clip at a time (as the app runs them)."""
        outputs = []
        for audio in audios:
            log_probs, run = self.browser.run(audio)
            self.runs.append(run)
            outputs.append(log_probs)
        return outputs

    def python_log_probs(self, audio: np.ndarray, windowing: Windowing = Windowing()) -> np.ndarray:
        """The clip's log-probs by onnxruntime in Python, in the same windows as the page's."""
        return windowed_log_probs(super().log_probs, audio, self.frame_samples, self.sample_rate,
                                  windowing.at_most(self.max_seconds))
