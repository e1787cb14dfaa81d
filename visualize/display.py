"""Getting an OpenGL window: Open3D's import, the X display, and a private Xvfb for screenshots.

Open3D's legacy `Visualizer` needs an X display with OpenGL; its Filament `OffscreenRenderer`
needs EGL/Vulkan, which CPU-only servers lack (DESIGN §6), so headless screenshots open a real
window on a virtual framebuffer (Xvfb). Every way this can fail becomes one `ViewerUnavailable`
message that says what to install or to use `--no-window` — never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from pointseg.errors import PointsegError

OPEN3D_PIN = "open3d-cpu==0.20.*"
NO_WINDOW_HINT = "or use --no-window (matplotlib, no OpenGL needed)"


class ViewerUnavailable(PointsegError):
    """Open3D, a display or OpenGL is missing; the message says what to do."""


def import_open3d() -> Any:
    """`import open3d`, or a ViewerUnavailable saying what to install."""
    try:
        import open3d as o3d
    except ImportError as exc:
        # A missing system library surfaces as an ImportError of Open3D's compiled module.
        if "shared object" in str(exc) or ".so" in str(exc):
            raise ViewerUnavailable(_library_hint(exc)) from None
        raise ViewerUnavailable(
            f"Open3D is not installed: pip install '{OPEN3D_PIN}' (or `pip install -e .[viz]`), "
            + NO_WINDOW_HINT
        ) from None
    except OSError as exc:  # libGL.so.1 / libusb-1.0.so.0 missing
        raise ViewerUnavailable(_library_hint(exc)) from None
    return o3d


def _library_hint(exc: Exception) -> str:
    return (
        f"Open3D cannot load a system library ({exc}): install them with "
        f"`apt-get install -y libgl1 libusb-1.0-0` (as root), {NO_WINDOW_HINT}"
    )


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY"))


@contextlib.contextmanager
def virtual_display(width: int = 1920, height: int = 1080, timeout: float = 15.0) -> Iterator[str]:
    """Start a private Xvfb on a free display number, set DISPLAY for this process, yield it.

    Xvfb picks the number itself (`-displayfd`), so parallel runs never collide. The server is
    stopped (by its own pid) and DISPLAY restored on exit.
    """
    exe = shutil.which("Xvfb")
    if exe is None:
        raise ViewerUnavailable(
            "no display (DISPLAY is not set) and Xvfb is not installed: "
            "`apt-get install -y xvfb` (as root) or run under `xvfb-run -a`, " + NO_WINDOW_HINT
        )
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            exe,
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    old = os.environ.get("DISPLAY")
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number.isdigit():
            raise ViewerUnavailable(
                f"Xvfb did not start within {timeout:.0f} s (exit code {proc.poll()}); "
                "run under `xvfb-run -a`, " + NO_WINDOW_HINT
            )
        display = f":{number}"
        os.environ["DISPLAY"] = display
        yield display
    finally:
        os.close(read_fd)
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def display_for(interactive: bool) -> Iterator[str]:
    """The current display; for screenshots without one, a private Xvfb."""
    if has_display():
        yield os.environ["DISPLAY"]
        return
    if interactive:
        raise ViewerUnavailable(
            "no display (DISPLAY is not set): run the viewer on a desktop session (or ssh -X), "
            "write an image with --screenshot out.png (starts Xvfb by itself), " + NO_WINDOW_HINT
        )
    with virtual_display() as d:
        yield d
