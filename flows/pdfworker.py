"""Declaration PDFs made in child processes (MOTCUA_PDF_WORKERS), so that the bot's process
neither holds the GIL for them (fpdf2 and fontTools are pure Python: about 30 ms of CPU a
PDF) nor carries fpdf2, fontTools and the parsed fonts (about 55 MB).

`make_pdf` is what the engine calls: with workers configured (`configure`), the PDF is
made by one of them while the calling thread (a worker thread of the bot) waits without
the GIL; without, it is made here as before. A worker that died (kill -9) or gave no
reply in time is replaced and the PDF tried once more, then made in this process: a
citizen's declaration never fails because of a worker. Logs name the worker and the
failure, never the declaration.

Workers run only while they are useful: one starts when a citizen reaches the review
(`prepare`, called by the conversation service: the PDF comes one answer later), or at the
first PDF, and stops after IDLE_S unused. A bot with no PDF to make holds no worker.

Not `multiprocessing`: its "spawn" and "forkserver" children import the parent's main
module first, and `motcua`'s script imports bot.cli, which imports the settings, the
store, SQLAlchemy, the engine. A worker here is `python -c` importing this module and
flows.pdf (fpdf2), nothing of the bot. Requests and replies are length-prefixed pickles
over its stdin and stdout (POSIX pipes); it exits when its stdin closes, so it never
outlives the bot, even one killed with SIGKILL.

This module imports only the standard library: importing it costs the bot nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # one try; a fresh worker needs about a second (start, fonts)
# A worker unused this long exits: a commune makes a few PDFs a day, and an idle worker
# holds about 72 MB. `prepare` starts one again when a citizen reaches the review.
IDLE_S = 600.0
_HEADER = struct.Struct("!I")  # the length of the pickle that follows
_ROOT = str(Path(__file__).resolve().parents[1])  # the folder that holds flows/
_CHILD = f"import sys; sys.path.insert(0, {_ROOT!r}); import flows.pdfworker as w; w._serve()"


class WorkerError(Exception):
    """A worker could not make the PDF: it died, gave no reply in time, or raised."""


class WorkerRaised(WorkerError):
    """The worker's render_pdf raised (the same request would fail again)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    """`size` bytes from `fd`; None at end of file; WorkerError past `deadline`."""
    chunks: list[bytes] = []
    while size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerError("no reply in time")
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _HEADER.pack(len(data)) + data)


def _receive(fd: int, deadline: float | None) -> Any | None:
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    data = _read_exactly(fd, _HEADER.unpack(header)[0], deadline)
    return None if data is None else pickle.loads(data)


# What fpdf2 and fontTools import when it is there but a declaration never uses: numpy
# (fontTools' variable fonts), Pillow (images), cryptography (encrypted and signed PDFs).
# Each import is optional in them (`try: ... except ImportError`); skipped, a worker holds
# about 21 MB less (72 instead of 93 MB). The bot's process, when it makes a PDF itself,
# imports them as before.
OPTIONAL_IMPORTS = ("numpy", "PIL", "cryptography")


def _skip_optional_imports() -> None:
    import warnings

    for name in OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # import raises
    warnings.filterwarnings("ignore", message="Pillow could not be imported")


def _serve() -> None:
    """The worker's loop: one request at a time from stdin, its reply to stdout."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bot's; its exit ends us
    out = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, not into a reply
    _skip_optional_imports()
    from flows import pdf

    while (request := _receive(0, None)) is not None:
        op, args = request
        try:
            if op == "render":
                markup, title = args
                reply: tuple[str, Any] = ("ok", pdf.render_pdf(markup, title=title))
            elif op == "warm":  # the fonts, parsed once per process (about half a second)
                pdf._font_templates()
                reply = ("ok", os.getpid())
            elif op == "modules":  # what a worker has imported (tests/test_pdf_worker.py)
                reply = ("ok", sorted(k for k, m in sys.modules.items() if m is not None))
            else:
                reply = ("error", f"unknown request {op!r}")
        except Exception as exc:  # its message may quote the declaration: the type only
            reply = ("error", type(exc).__name__)
        try:
            _send(out, reply)
        except BrokenPipeError:  # the bot is gone
            return


def _child_env() -> dict[str, str]:
    """This process's environment without the bot's secrets (token, database, data keys):
    a worker only draws text."""
    secret = ("TELEGRAM_", "MOTCUA_", "DATABASE_URL", "OFFICER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(secret)}


class _Worker:
    """One child process and its pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=_child_env(),
        )
        self.pid = self.proc.pid
        self.used_at = time.monotonic()

    def call(self, request: tuple[str, tuple], timeout: float) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin.fileno(), request)
            reply = _receive(self.proc.stdout.fileno(), time.monotonic() + timeout)
        except WorkerError:
            raise
        except Exception as exc:  # a broken pipe, a reply cut short
            raise WorkerError(f"worker gone ({type(exc).__name__})") from None
        if reply is None:
            raise WorkerError(f"worker exited ({self.proc.poll()})")
        status, value = reply
        if status != "ok":
            raise WorkerRaised(f"worker raised {value}")
        return value

    def stop(self, kill: bool = False) -> None:
        """Close its pipes (an idle worker exits at once); kill it if `kill` or if it does
        not exit within a second. Only by the thread that holds it: its pipes close."""
        if kill:
            self.proc.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PdfWorkers:
    """`size` worker processes, each started when first needed and replaced when it fails.

    A worker is held by one thread at a time (taken from `_idle`, put back after its
    reply), and only that thread closes its pipes: `shutdown` stops the idle ones and
    kills the busy ones, whose threads then see the end of their pipe and stop them."""

    def __init__(self, size: int, timeout: float = TIMEOUT_S, idle: float = IDLE_S) -> None:
        self.size = size
        self.timeout = timeout
        self.idle = idle
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(None)  # a worker not started yet
        self._closed = False
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._warming = False
        self._stopping = threading.Event()
        if idle > 0:
            reaper = threading.Thread(target=self._reap, name="pdf-worker-reaper", daemon=True)
            reaper.start()

    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        with self._lock:
            return sorted(w.pid for w in self._live if w.proc.poll() is None)

    def call(self, op: str, *args: Any) -> Any:
        """A worker's answer to `op`, tried twice (the second time in a new process);
        WorkerError if both fail, if the worker raised, or if no worker is free in time."""
        try:
            worker = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            raise WorkerError("no worker free in time") from None
        try:
            if worker is not None and worker.proc.poll() is not None:
                log.warning("PDF worker %s had exited (%s)", worker.pid, worker.proc.returncode)
                self._stop(worker)
                worker = None
            for attempt in (1, 2):
                if worker is None:
                    worker = self._start()
                try:
                    return worker.call((op, args), self.timeout)
                except WorkerError as exc:
                    log.warning("PDF worker %s failed, try %s of 2: %s", worker.pid, attempt, exc)
                    self._stop(worker, kill=True)
                    worker = None
                    if isinstance(exc, WorkerRaised):
                        raise
            raise WorkerError("two tries failed")
        finally:
            if worker is not None:
                worker.used_at = time.monotonic()
            with self._lock:
                closing, worker = (worker, None) if self._closed else (None, worker)
                self._idle.put(worker)
            if closing is not None:
                self._stop(closing)

    def prepare(self) -> None:
        """Start a worker in a background thread unless one runs or is starting (a citizen
        reached the review: a PDF may be asked for within seconds). Returns at once."""
        with self._lock:
            if self._closed or self._warming or len(self._live) >= self.size:
                return
            self._warming = True

        def warm() -> None:
            try:
                self.call("warm")
            except WorkerError as exc:
                if not self._closed:
                    log.warning("PDF worker start failed: %s", exc)
            finally:
                with self._lock:
                    self._warming = False

        threading.Thread(target=warm, name="pdf-worker-start", daemon=True).start()

    def stop_idle(self) -> int:
        """Stop the idle workers unused for `idle` seconds; returns how many."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return 0
            taken: list[_Worker | None] = []
            while True:
                try:
                    taken.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            old = [w for w in taken if w is not None and now - w.used_at >= self.idle]
            for worker in taken:
                self._idle.put(None if worker in old else worker)
        for worker in old:
            log.info("PDF worker %s stopped after %.0f s unused", worker.pid, self.idle)
            self._stop(worker)
        return len(old)

    def _reap(self) -> None:
        while not self._stopping.wait(min(self.idle / 2, 30.0)):
            try:
                self.stop_idle()
            except Exception:  # never let the reaper die silently
                log.exception("PDF worker reaper")

    def _start(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerError("PDF workers shut down")
            try:
                worker = _Worker()
            except OSError as exc:
                raise WorkerError(f"cannot start a worker ({exc.strerror})") from None
            self._live.add(worker)
            return worker

    def _stop(self, worker: _Worker, kill: bool = False) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.stop(kill)

    def shutdown(self) -> None:
        """Stop every worker; a PDF being made is made in its caller's process instead."""
        idle: list[_Worker] = []
        self._stopping.set()
        with self._lock:
            self._closed = True
            while True:
                try:
                    worker = self._idle.get_nowait()
                except queue.Empty:
                    break
                if worker is not None:
                    idle.append(worker)
            busy = [w for w in self._live if w not in idle]
            for _ in range(self.size):
                self._idle.put(None)  # a late caller gets WorkerError, not a wait
        for worker in busy:
            worker.proc.kill()
        for worker in idle:
            self._stop(worker)


_pool: PdfWorkers | None = None
_pool_lock = threading.Lock()


def configure(workers: int, timeout: float = TIMEOUT_S, idle: float = IDLE_S) -> PdfWorkers | None:
    """Make PDFs in `workers` child processes from now on (0: in this process), each
    started when first needed (or by `prepare`, `warm_up`) and stopped after `idle`
    seconds unused (0: never). Returns the pool (None for 0)."""
    global _pool
    on = workers > 0 and os.name == "posix"
    pool = PdfWorkers(workers, timeout, idle) if on else None
    with _pool_lock:
        old, _pool = _pool, pool
    if old is not None:
        old.shutdown()
    return pool


def shutdown() -> None:
    """Stop the workers (the application stops); later PDFs are made in this process."""
    configure(0)


atexit.register(shutdown)


def prepare() -> None:
    """A PDF may be asked for soon (a citizen reached the review): start a worker in the
    background if none runs, so that the PDF does not wait for its start (about a second).
    Cheap when one runs; nothing without workers."""
    pool = _pool
    if pool is not None:
        pool.prepare()


def warm_up() -> list[threading.Thread]:
    """Start the configured workers and have each parse its fonts (the first PDF of a
    fresh process takes about 0.6 s), in background threads: returns at once."""
    pool = _pool
    if pool is None:
        return []

    def warm() -> None:
        try:
            pool.call("warm")
        except WorkerError as exc:
            if pool is _pool:  # not shut down meanwhile
                log.warning("PDF worker warm-up failed: %s", exc)

    threads = [
        threading.Thread(target=warm, name=f"pdf-warm-up-{i}", daemon=True)
        for i in range(pool.size)
    ]
    for thread in threads:
        thread.start()
    return threads


def make_pdf(markup: str, *, title: str = "") -> bytes:
    """The declaration PDF (flows.pdf.render_pdf), made by a worker when configured; made
    in this process when not, or when the workers fail."""
    pool = _pool
    if pool is not None:
        try:
            return pool.call("render", markup, title)
        except WorkerError as exc:
            log.error("declaration PDF made in the bot's process instead: %s", exc)
    from flows.pdf import render_pdf

    return render_pdf(markup, title=title)
