"""Running the emulator: in a background thread (tests, `import --emulator`) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from aiohttp import web

from .admin import stats
from .app import STATE, State, create_app
from .settings import EmulatorConfig, Faults


class EmulatorServer:
    """The emulator on its own event loop in a daemon thread, bound to 127.0.0.1 (port 0 = any free port).

    with EmulatorServer() as emu:
        emu.url         # http://127.0.0.1:PORT
        emu.stats()     # the same dict /__emulator/stats answers
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> State:
        assert self._app is not None, "emulator not started"
        return self._app[STATE]

    def start(self) -> EmulatorServer:
        started: Future[None] = Future()
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            self._app = create_app(self.config)
            self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            server = site._server  # the bound port when port 0 was asked for
            assert server is not None and server.sockets  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread
                started.set_exception(exc)
                return
            started.set_result(None)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="bulkoffers-emulator", daemon=True)
        self._thread.start()
        started.result(timeout=30)
        return self

    def _call(self, fn: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout=30)

    def stats(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return stats(self.state)

        return self._call(read)

    def set_faults(self, faults: Faults | None = None, /, **changes: Any) -> None:
        """Switches faults on while it runs: a whole `Faults`, or changes to the current ones by keyword
        (`set_faults(latency_ms=5, rate_limit=20)`). Raises ValueError naming a wrong setting."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(Faults)}
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")

        async def apply() -> None:
            base = faults if faults is not None else self.state.faults
            self.state.set_faults(dataclasses.replace(base, **changes) if changes else base)

        self._call(apply)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        runner = self._runner

        async def shutdown() -> None:
            if runner is not None:
                await runner.cleanup()
            # Handlers still sleeping (slow answers, latency) end here, not as "destroyed but pending".
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self._call(shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


async def serve_forever(config: EmulatorConfig, host: str, port: int, ready: Any = None) -> None:
    """Foreground server for `bulkoffers emulator`; runs until cancelled (Ctrl-C)."""
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # Long-lived objects out of the collector: a full GC pass would stall answers and distort timings.
    gc.collect()
    gc.freeze()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port  # type: ignore[attr-defined]
    if ready is not None:
        ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
