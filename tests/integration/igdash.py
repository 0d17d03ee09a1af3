"""igdash.py: the operator dashboard in a real Chromium, served by the real broker.

Why this exists: the dashboard's promises (a key made in the browser, a
token minted per connect, rows that turn online or revoked within 2 s, a
head whose signature the page itself checks, admin actions that really cut
a device off) only mean something in a real browser talking to the real
mosquitto + plugin over its websockets listener, the way an operator would
use it. This module copies the built page into an http_dir, writes its
trust anchor with `iotguard dashboard-config`, adds the websockets listener
to a harness Broker, drives Chromium through chromedriver (selenium), and
always quits the browser, even when a test fails.

Measurements that a test asserts ("within 2 s") are taken inside the page:
`watch()` installs a condition that the page itself evaluates every 5 ms
and stamps with Date.now() the first time it holds, so the latency of the
WebDriver round trip is not counted, and the test can start watching before
it causes the event.

Environment:
    IG_DASH_DIR         the built page (default <IG_BUILD>/dashboard)
    IG_CHROMIUM         the browser binary (default /usr/bin/chromium)
    IG_CHROMEDRIVER     chromedriver (default /usr/bin/chromedriver)
"""
import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

import igharness as H

DASH_DIR = Path(os.environ.get("IG_DASH_DIR", "") or (H.BUILD / "dashboard"))
CHROMIUM = os.environ.get("IG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("IG_CHROMEDRIVER", "/usr/bin/chromedriver")
PAGE_FILES = ("index.html", "iotguard-dashboard.js", "iotguard-dashboard.css")
INSTALL_HINT = "apt-get install chromium chromium-driver python3-selenium"

ALL_DASHBOARDS = []


def require_browser():
    """Fails (never skips) when the browser tooling or the built page is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail("browser tests need %s (missing: %s); install with: %s"
                    % (" and ".join((CHROMIUM, CHROMEDRIVER)), ", ".join(missing), INSTALL_HINT), pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("browser tests need selenium for /usr/bin/python3; install with: %s" % INSTALL_HINT,
                    pytrace=False)
    absent = [f for f in PAGE_FILES if not (DASH_DIR / f).is_file()]
    if absent:
        pytest.fail("the dashboard is not built in %s (missing %s): build it with meson compile -C %s "
                    "(needs node and npm; meson option -Ddashboard=enabled), or point IG_DASH_DIR at a "
                    "directory holding %s" % (DASH_DIR, ", ".join(absent), H.BUILD, ", ".join(PAGE_FILES)),
                    pytrace=False)


def _esc(s):
    """A JS string literal."""
    return json.dumps(s)


def row_selector(ident):
    """The visible table row of ident (CSS attribute selectors need quoting)."""
    return '#fleet-table tbody tr[data-id=%s]' % _esc(ident)


class Dashboard:
    """The page in http_dir on a websockets listener of `broker`, and a
    Chromium showing it (one browser profile: IndexedDB persists across
    reloads, as for an operator)."""

    def __init__(self, cluster, root, policy=None, name="dash", width=1600, height=1000):
        require_browser()
        self.cluster = cluster
        self.root = Path(root) / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.http_dir = self.root / "http"
        if self.http_dir.exists():
            shutil.rmtree(self.http_dir)
        self.http_dir.mkdir()
        for f in sorted(DASH_DIR.iterdir()):
            if f.is_file():
                shutil.copy2(f, self.http_dir / f.name)
        args = ["dashboard-config", "--ledger", cluster.ledger, "--out", self.http_dir / "config.json"]
        if policy:
            args += ["--policy", policy]
        H.cli(*args)
        self.config = json.loads((self.http_dir / "config.json").read_text())
        self.ws_port = H.free_port()
        self.width, self.height = width, height
        self.profile = self.root / "profile"
        self.driver = None
        self.broker = None
        self.shots = []
        self._console = []
        ALL_DASHBOARDS.append(self)

    # -- the broker side --
    def ws_lines(self):
        return ["listener %d 127.0.0.1" % self.ws_port, "protocol websockets", "http_dir %s" % self.http_dir]

    def attach(self, broker):
        """Adds the websockets listener with http_dir to broker (before start)."""
        broker.extra_lines += self.ws_lines()
        self.broker = broker
        return broker

    def wait_http(self, timeout=None):
        """Waits until the websockets listener serves the page."""
        url = "http://127.0.0.1:%d/" % self.ws_port

        def ok():
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    return r.status == 200 and b"iotguard-dashboard.js" in r.read()
            except OSError:
                return False
        H.wait_for(ok, timeout or H.T(10), interval=0.1,
                   what="the broker to serve the dashboard at %s\n%s" % (url, self.broker.diagnostics()))

    # -- the browser --
    def start_browser(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--user-data-dir=%s" % self.profile, "--window-size=%d,%d" % (self.width, self.height),
                  "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                  "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
                  "--disable-backgrounding-occluded-windows"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_path=str(self.root / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        # --window-size counts the (invisible) window frame; make the page's
        # viewport exactly width x height, so screenshots are that size.
        self._metrics(self.width, self.height)
        self.driver.set_script_timeout(H.T(30))
        self.driver.set_page_load_timeout(H.T(30))
        return self.driver

    def url(self, ident=None, host="localhost"):
        q = "?id=%s" % ident if ident else ""
        return "http://%s:%d/%s" % (host, self.ws_port, q)

    def open(self, ident="dash1"):
        """Opens the page (http://localhost: a secure context, so WebCrypto
        exists) and waits until it booted (its identity is known)."""
        if self.driver is None:
            self.wait_http()
            self.start_browser()
        self.driver.get(self.url(ident))
        self.wait_ready()
        return self

    def mark_typed(self, css, text, key="typed"):
        """Records in the page (Date.now(), in window.__igTyped[key]) when
        the input's value first equals text: the moment typing finished."""
        self.js("""
            const el = document.querySelector(arguments[0]), want = arguments[1], key = arguments[2];
            window.__igTyped = window.__igTyped || {};
            window.__igTyped[key] = null;
            const f = () => { if (el.value === want && window.__igTyped[key] === null) {
                window.__igTyped[key] = Date.now(); el.removeEventListener('input', f); } };
            el.addEventListener('input', f);""", css, text, key)

    def typed_at(self, key="typed"):
        t = self.value("(window.__igTyped || {})[%s]" % _esc(key))
        assert t, "the page saw no input event completing the typed text (%s)" % key
        return t / 1000.0

    def reload(self):
        self.driver.refresh()
        self.wait_ready()

    def wait_ready(self):
        self.wait("window.iotguardDashboard && window.iotguardDashboard.ready === true", H.T(20),
                  "the page to boot (window.iotguardDashboard.ready)")

    def quit(self):
        d, self.driver = self.driver, None
        if d is not None:
            try:
                (self.root / "browser-console.log").write_text(self.console_text(d))
            except Exception:
                pass
            d.quit()

    # -- talking to the page --
    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def hook(self, name, *args):
        """window.iotguardDashboard.NAME(...args) (or the property NAME)."""
        return self.js("const h = window.iotguardDashboard, n = arguments[0];"
                       "if (!h) throw new Error('window.iotguardDashboard is missing');"
                       "if (!(n in h)) throw new Error('window.iotguardDashboard has no ' + n);"
                       "return typeof h[n] === 'function' ? h[n](...Array.from(arguments).slice(1)) : h[n];",
                       name, *args)

    def value(self, expr):
        return self.js("return (%s);" % expr)

    def wait(self, expr, timeout, what):
        """Polls the JS expression until truthy; returns its value. On
        timeout the message carries the page's view and the broker's log."""
        last = {}

        def cond():
            try:
                return self.value(expr)
            except Exception as e:   # page reloading, hook not yet there
                last["e"] = str(e).splitlines()[0] if str(e) else repr(e)
                return None
        try:
            return H.wait_for(cond, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError("%s\n(last error: %s)\n%s" % (e, last.get("e", "none"), self.diagnostics())) from None

    def watch(self, key, expr):
        """Starts an in-page watcher: the page evaluates expr every 5 ms and
        records Date.now() (ms) the first time it is truthy."""
        self.js("""
            const key = arguments[0], f = new Function('return (' + arguments[1] + ');');
            window.__igWatch = window.__igWatch || {};
            const old = window.__igWatch[key];
            if (old && old.iv) clearInterval(old.iv);
            const w = {t: null, v: null, iv: null, err: null};
            window.__igWatch[key] = w;
            const tick = () => {
                try { const v = f(); if (v) { w.t = Date.now(); w.v = v; clearInterval(w.iv); w.iv = null; } }
                catch (e) { w.err = String(e); }
            };
            w.iv = setInterval(tick, 5);
            tick();""", key, expr)

    def watched(self, key, timeout, what):
        """Waits for watcher key; returns (time in s since the epoch, value)."""
        try:
            w = self.wait("window.__igWatch && window.__igWatch[%s] && window.__igWatch[%s].t !== null && "
                          "{t: window.__igWatch[%s].t, v: window.__igWatch[%s].v}" % ((_esc(key),) * 4),
                          timeout, what)
        finally:
            self.js("const w = (window.__igWatch || {})[arguments[0]]; if (w && w.iv) clearInterval(w.iv);", key)
        return w["t"] / 1000.0, w["v"]

    # -- the contract's views --
    def conn_state(self):
        return self.hook("connState")

    def row(self, ident):
        return self.hook("row", ident)

    def dom_state(self, ident):
        return self.value("(document.querySelector(%s) || {dataset: {}}).dataset.state || null" % _esc(row_selector(ident)))

    def wait_connected(self, timeout=None):
        self.wait("window.iotguardDashboard.connState() === 'connected' && "
                  "document.querySelector('#conn').dataset.state === 'connected'",
                  timeout or H.T(20), "the page to connect (#conn[data-state=connected])")

    def wait_fleet(self, timeout=None):
        self.wait("window.iotguardDashboard.fleetLoaded() === true", timeout or H.T(20),
                  "the page's first fleet listing")

    def identity(self):
        return self.hook("identity")

    def enroll_self(self, admin, role="monitor", timeout=None):
        """Enrols the page's own key with the CLI (online, as `admin`), then
        waits for the page to connect by itself (no reload) and load the fleet."""
        me = self.identity()
        assert re.fullmatch(r"[0-9a-f]{64}", me["publicKeyHex"] or ""), me
        H.cli("enroll", "--host", "127.0.0.1", "--port", self.broker.port, "--cluster", self.cluster.name,
              "--user", admin.id, "--key", admin.key, "--id", me["id"], "--role", role,
              "--pubkey", me["publicKeyHex"])
        t0 = time.monotonic()
        self.wait_connected(timeout or H.T(30))
        t1 = time.monotonic()
        self.wait_fleet(timeout)
        t2 = time.monotonic()
        self.timings = {"enrolled_to_connected_s": t1 - t0, "connected_to_fleet_s": t2 - t1}
        self.wait("(window.iotguardDashboard.identity() || {}).role === %s" % _esc(role), H.T(10),
                  "the page to learn its own role (%s)" % role)
        return me

    def click(self, css):
        from selenium.webdriver.common.by import By
        el = self.driver.find_element(By.CSS_SELECTOR, css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        el.click()
        return el

    def type_into(self, css, text, clear=True):
        from selenium.webdriver.common.by import By
        el = self.driver.find_element(By.CSS_SELECTOR, css)
        if clear:
            el.clear()
        el.send_keys(text)
        return el

    def text(self, css):
        return self.value("(document.querySelector(%s) || {}).textContent || ''" % _esc(css))

    def screenshot(self, path, full_page=False):
        """A PNG of the viewport (width x height), or with full_page of the
        whole page (the viewport grown to the document's height for the shot)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            h = int(self.value("Math.ceil(document.documentElement.scrollHeight)"))
            self._metrics(self.width, max(self.height, min(h, 4000)))
            time.sleep(0.5)   # charts resize with their container; let them redraw
        try:
            assert self.driver.save_screenshot(str(path)), "could not save a screenshot to %s" % path
        finally:
            if full_page:
                self._metrics(self.width, self.height)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
        self.shots.append(path)
        return path

    def _metrics(self, width, height):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    # -- evidence --
    def console(self, driver=None):
        """Every browser console entry so far (chromedriver hands each out once)."""
        d = driver or self.driver
        if d is not None:
            try:
                self._console.extend(d.get_log("browser"))
            except Exception as e:
                self._console.append({"level": "INFO", "message": "(no browser log: %s)" % e})
        return self._console

    def console_text(self, driver=None):
        return "\n".join("%s %s" % (e.get("level"), e.get("message")) for e in self.console(driver))

    def assert_no_console_errors(self, allow=()):
        """The page logged no error (SEVERE) but a missing favicon and the
        patterns in allow: an exception or a failed load would show here."""
        rx = [re.compile(p) for p in (r"favicon\.ico",) + tuple(allow)]
        bad = [e["message"] for e in self.console()
               if e.get("level") == "SEVERE" and not any(r.search(e.get("message", "")) for r in rx)]
        assert not bad, "the page logged errors:\n" + "\n".join(bad[:10])

    def diagnostics(self):
        view = "(page unavailable)"
        try:
            view = json.dumps(self.js(
                "const h = window.iotguardDashboard; if (!h) return {hooks: false, url: location.href};"
                "const safe = f => { try { return f(); } catch (e) { return 'threw: ' + e; } };"
                "return {ready: h.ready, conn: safe(() => h.connState()), identity: safe(() => h.identity()),"
                " fleetLoaded: safe(() => h.fleetLoaded()), counts: safe(() => h.counts()),"
                " head: safe(() => h.head()), visibility: document.visibilityState,"
                " connText: (document.querySelector('#conn') || {}).textContent};"), default=str)[:3000]
        except Exception as e:
            view = "(page unavailable: %s)" % e
        console = self.console_text()[-3000:]
        broker = self.broker.diagnostics() if self.broker else ""
        return "--- page ---\n%s\n--- browser console (tail) ---\n%s\n%s" % (view, console, broker)


def quit_all(start=0):
    """Quits every browser opened since index start (fixtures call this)."""
    errors = []
    while len(ALL_DASHBOARDS) > start:
        d = ALL_DASHBOARDS.pop()
        try:
            d.quit()
        except Exception as e:
            errors.append("%s: %s" % (d.root, e))
    return errors


def frame_stats_text(fs):
    return "frames %d: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms" % (
        fs["count"], fs["p50"], fs["p95"], fs.get("p99", float("nan")), fs["max"])
