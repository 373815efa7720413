"""A Mosquitto of the test's own (``/usr/sbin/mosquitto -c <conf>``) on a free port, that the
test may kill and restart at will; the machine's broker is never touched."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class PrivateBroker:
    """``config`` is the broker's configuration (``{port}`` stands for its port); by default one
    anonymous plain listener."""

    def __init__(self, workdir: Path, config: str | None = None) -> None:
        self.port: int = free_port()
        self._config = workdir / "mosquitto.conf"
        text = config or (
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        )
        self._config.write_text(text.replace("{port}", str(self.port)))
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            MOSQUITTO,
            "-c",
            str(self._config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        # Ready when it accepts connections (bounded; the process dying ends it early too).
        async with asyncio.timeout(10):
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited with {self._process.returncode}")
                try:
                    _, writer = await asyncio.open_connection(HOST, self.port)
                except OSError:
                    await asyncio.sleep(0.02)  # poll interval while the process starts
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        """A crash: no clean shutdown, nothing saved (persistence is off anyway)."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None
