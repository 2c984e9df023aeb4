"""cdp.py - headless Chromium driven over the DevTools protocol, Python 3 standard library only.

Chromium is started with --remote-debugging-pipe: it reads commands on its fd 3 and writes
answers and events on its fd 4, each one JSON document ended by a NUL byte, so no WebSocket
client is needed. It runs in a process group of its own (its pid is written to PIDFILE, and
the test's EXIT trap kills that group while the file is there); close() ends it, reaps it and
removes the file, and Chromium exits by itself when
the pipe closes (the driver died).

Network: every host name resolves to nothing but 127.0.0.1 (--host-resolver-rules), no proxy,
no background or component traffic; and every request the page makes is recorded
(Network.requestWillBeSent) so the test can assert that none left 127.0.0.1.
"""
import base64
import fcntl
import json
import os
import select
import signal
import time


class CdpError(Exception):
    pass


class Browser:
    def __init__(self, chromium, workdir, wait, width=1280, height=800):
        self.wait = wait
        # Everything Chromium writes stays under workdir: its profile, and its HOME, where its
        # crash handler keeps its database (so the handler's command line names workdir too).
        self.home = os.path.join(workdir, "chromium-home")
        profile = os.path.join(workdir, "chromium-profile")
        log = os.path.join(workdir, "chromium.log")
        self.pidfile = pidfile = os.path.join(workdir, "chromium.pid")
        os.makedirs(self.home, exist_ok=True)
        self.buf = b""
        self.next_id = 0
        self.requests = []  # every URL the page requested
        self.console = []  # console errors, CSP violations, uncaught exceptions
        cmd_r, cmd_w = os.pipe()  # we write, Chromium reads on fd 3
        ev_r, ev_w = os.pipe()  # Chromium writes on fd 4, we read
        # Above 10, so the dup2 to 3 and 4 in the child never overwrites one another.
        cmd_r, cmd_w, ev_r, ev_w = (self._high(fd) for fd in (cmd_r, cmd_w, ev_r, ev_w))
        args = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
            "--disable-dev-shm-usage", "--no-proxy-server",
            "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--remote-debugging-pipe", "about:blank",
        ]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            (os.POSIX_SPAWN_DUP2, cmd_r, 3),
            (os.POSIX_SPAWN_DUP2, ev_w, 4),
        ]
        env = dict(os.environ, HOME=self.home, XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                   XDG_CACHE_HOME=os.path.join(self.home, ".cache"))
        self.pid = os.posix_spawn(chromium, args, env, file_actions=actions, setpgroup=0)
        with open(pidfile, "w") as f:
            f.write(f"{self.pid}\n")
        os.close(cmd_r)
        os.close(ev_w)
        self.w, self.r = cmd_w, ev_r
        self.session = None

    @staticmethod
    def _high(fd):
        n = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return n

    # --- the pipe -------------------------------------------------------------------------

    def _read_one(self, deadline):
        """The next message from Chromium, waiting until deadline (monotonic)."""
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("timed out waiting for Chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise CdpError("Chromium closed the pipe (it exited)")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def _note(self, msg):
        """Record what the test asserts on from an event."""
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                self.console.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.console.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                       for a in p.get("args", [])))

    def send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.w, data):]
        deadline = time.monotonic() + self.wait
        while True:
            m = self._read_one(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CdpError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self._note(m)

    # --- the page -------------------------------------------------------------------------

    def open_page(self, width=1280, height=800):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url):
        self.send("Page.navigate", {"url": url})

    def eval(self, expr):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr, what, bound=None):
        """Poll until the expression is truthy (its value), at most bound seconds: a bound only
        a failing test reaches. While the page navigates, the expression counts as false."""
        deadline = time.monotonic() + (bound or self.wait)
        # An element found is true (a node does not come back by value); an error is false.
        guarded = (f"(() => {{ try {{ const v = ({expr}); return v && typeof v === 'object' ? true : v; }} "
                   f"catch (e) {{ return false; }} }})()")
        while True:
            try:
                v = self.eval(guarded)
            except CdpError as e:
                # Asked while the page navigates (a form's submit): no document to ask yet.
                if not any(w in str(e) for w in ("navigated", "context", "Cannot find")):
                    raise
                v = False
            if v:
                return v
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {what} ({expr})")
            # Events keep arriving meanwhile: read them so none is lost, 50 ms at most.
            try:
                m = self._read_one(time.monotonic() + 0.05)
                if "method" in m:
                    self._note(m)
            except CdpError as e:
                if "timed out" not in str(e):
                    raise

    def key(self, key, code, vk, text=""):
        """Press and release one key in the focused element, as a keyboard does."""
        base = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
        self.send("Input.dispatchKeyEvent", dict(base, type="keyDown", text=text))
        self.send("Input.dispatchKeyEvent", dict(base, type="keyUp"))

    def type_into(self, selector, text):
        """Focus the element, clear it, type the text."""
        self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                  f"e.focus(); e.select && e.select(); return true; }})()")
        self.send("Input.insertText", {"text": text})

    def enter(self):
        self.key("Enter", "Enter", 13, "\r")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except (CdpError, OSError):
            pass
        # Wait for it to exit without reaping it: while it is an unreaped child its pid, and so
        # its process group's id, cannot be reused, so the group kill below hits only its own.
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                break
            time.sleep(0.05)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # its helpers, if any is left
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        # Reaped: the pid may now be reused by any process, which the test's exit trap must not
        # kill: the file that names it goes.
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass
        # The crash handlers leave the group (a session of their own, under init) and would
        # linger a moment after the browser: they are ours when their command line names our HOME.
        for pid in crash_handlers(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def crash_handlers(home):
    """Pids of Chromium crash handlers whose database is under home."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"chrome_crashpad_handler") and \
                any(a.startswith(b"--database=" + home.encode()) for a in cmd):
            pids.append(int(entry))
    return pids
