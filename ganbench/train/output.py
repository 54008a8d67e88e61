"""What a training run writes and prints: the run folder, tick lines, stats.jsonl, TensorBoard, a progress bar.

- Nothing is created before the first output (tick or snapshot): a run that fails while starting leaves no
  folder, and a resumed run that fails leaves its folder exactly as it was. Whether the folder can be
  written (not read-only, not full, no file in the way) is checked before any training, with a probe file
  that is removed at once.
- On first output the run takes an exclusive lock on the folder (so a second `train` into it is an error),
  removes temp files a killed run of ours left (`.network-snapshot-*.pt.XXXX.tmp`, ...), drops the
  stats.jsonl lines of an interrupted attempt past the resumed snapshot, and writes the deferred files.
  A run that starts from zero (`--no-resume`, or no snapshot to resume) in a folder holding another run's
  files (snapshots, results.csv, stats, grids) first moves them into `replaced-<time>/`, so two runs'
  snapshots and eval results never mix.
- Every tick prints one NVlabs-style line to stdout (also when stdout is a file, so `> log.txt` shows the
  run), appends the same numbers to stats.jsonl (strict JSON: non-finite values as null) and, when the `tensorboard` package is installed, to a
  TensorBoard event file in the run folder (step = images shown, so runs shorter than 1 kimg plot too).
- The rich progress bar is drawn on stderr only when stderr is a terminal.
Only rank 0 of a multi-process run prints or writes.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ganbench.checkpoint import atomic_write_bytes, probe_writable
from ganbench.errors import ConfigError, OutputError

STATS_FILE = "stats.jsonl"
# Files that belong to one run: moved aside together when a fresh run replaces it.
RUN_FILES = re.compile(r"^(?:network-snapshot-[\d.]+\.(?:pt|safetensors|json)|fakes[\w.]*\.png|reals\.png|"
                       r"stats\.jsonl|events\.out\.tfevents\..*|results\.csv)$")
# Folders that belong to those files: the per-writer shards of results.csv (ganbench.results).
RUN_DIRS = re.compile(r"^results\.csv\.shards$")
# Temp files atomic_write_bytes makes for the files a run writes: `.<name>.<random>.tmp`.
OWNED_TEMP = re.compile(r"^\.(?:network-snapshot-[\d.]+\.(?:pt|safetensors|json)|fakes[\w.]*\.png|reals\.png|"
                        r"stats\.jsonl)\.[A-Za-z0-9_]+\.tmp$")


def format_time(seconds: float) -> str:
    """Elapsed time the way NVlabs' tick lines show it: 42s, 3m 05s, 2h 03m 05s, 1d 02h 03m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m"


def tick_line(record: dict[str, Any], extra: tuple[str, ...] = ()) -> str:
    """One tick as a log line: tick, kimg, time, sec/tick, sec/kimg, maintenance, memory, augment p, losses."""
    parts = [f"tick {record['tick']:<5d}", f"kimg {record['kimg']:<9.3f}", f"time {format_time(record['sec']):<12s}",
             f"sec/tick {record['sec_per_tick']:<7.2f}", f"sec/kimg {record['s_per_kimg']:<8.2f}",
             f"maintenance {record['maintenance_sec']:<6.2f}", f"cpumem {record['cpumem_gb']:<6.2f}"]
    if "gpumem_gb" in record:
        parts += [f"gpumem {record['gpumem_gb']:<6.2f}", f"reserved {record['gpumem_reserved_gb']:<6.2f}"]
    parts.append(f"augment {record['augment_p']:.3f}")
    parts += [f"{key} {record[key]}" if isinstance(record[key], int) else f"{key} {record[key]:.3f}"
              for key in extra if key in record]
    parts += [f"{key} {value:.4f}" for key, value in record.items() if key.startswith("loss/")]
    return " ".join(parts)


def summary_writer() -> Any:
    """torch's TensorBoard SummaryWriter class, or None when the `tensorboard` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def memory_gb() -> float:
    """This process's resident memory in GiB (peak RSS where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 30


def check_writable(folder: Path) -> None:
    """Fail before any training when the run folder cannot be created or written; creates nothing.

    The probe goes into the folder or, while it does not exist yet, its nearest existing parent (where the
    folder would be made), and is removed at once.
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise OutputError(f"cannot write the run folder {folder}: {existing} is a file, not a folder")
    try:
        probe_writable(existing, ".ganbench-probe.")
    except OSError as exc:
        where = "" if existing == folder else f" (in {existing})"
        raise OutputError(f"cannot write the run folder {folder}: {exc.strerror or exc}{where}") from None


class RunOutput:
    """The run folder and the run's printed lines, for one process (`enabled` only on rank 0)."""

    def __init__(self, out: Path, enabled: bool = True, quiet: bool = False, progress: bool = False,
                 resume_nimg: int = 0, console: Any = None, stdout: Any = None) -> None:
        self.out, self.enabled, self.quiet = Path(out), enabled, quiet
        self.resume_nimg = resume_nimg
        self._stdout = stdout
        self.console = console     # where the progress bar goes (default: stderr)
        self._want_progress = progress and enabled and not quiet
        self._pending: list[tuple[str, Callable[[BinaryIO], Any]]] = []
        self._opened = False
        self._lock_fd: int | None = None
        self._tb: Any = None
        self._bar: Any = None
        self._task: Any = None
        self._kept_stats = self._read_kept_stats() if enabled else []
        if enabled:
            check_writable(self.out)

    # -- printing --------------------------------------------------------------------------------
    def line(self, text: str) -> None:
        """Print one log line on stdout (rank 0, unless quiet); above the progress bar when one is shown."""
        if self.enabled and not self.quiet:
            print(text, file=self._stdout or sys.stdout, flush=True)

    @property
    def ticks_so_far(self) -> int:
        """Ticks the resumed run already logged: the next tick's number."""
        return len(self._kept_stats)

    # -- the folder ------------------------------------------------------------------------------
    def claim(self) -> None:
        """Lock an existing run folder now, so a second `train` into it fails before doing any work."""
        if self.enabled and self.out.is_dir():
            self._lock()

    def _lock(self) -> None:
        if self._lock_fd is not None:
            return
        try:
            import fcntl
        except ImportError:      # no flock (Windows): run without the guard
            return
        fd = os.open(self.out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"{self.out} is in use by another `ganbench train`; wait for it or use another --out") from None
        except OSError:          # file systems without flock (some NFS mounts): run without the guard
            os.close(fd)
            return
        self._lock_fd = fd

    def defer(self, name: str, write: Callable[[BinaryIO], Any]) -> None:
        """Write file `name` at the first output rather than now (a run that fails to start writes nothing)."""
        if self.enabled:
            self._pending.append((name, write))

    def open(self) -> None:
        """Create the folder on first output: lock, remove stale temp files, trim stats, write deferred files."""
        if self._opened or not self.enabled:
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the run folder {self.out}: {exc.strerror or exc}") from None
        self._lock()
        for path in self.out.iterdir():
            if OWNED_TEMP.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
        if self.resume_nimg == 0:
            self._replace_previous_run()
        text = "".join(line + "\n" for line in self._kept_stats).encode()
        atomic_write_bytes(self.out / STATS_FILE, lambda f: f.write(text))
        for name, write in self._pending:
            atomic_write_bytes(self.out / name, write)
        self._pending.clear()
        self._opened = True

    def _replace_previous_run(self) -> None:
        """Move another run's files out of the way before a fresh run writes its own: also when its snapshots were
        deleted, since its results.csv would otherwise be taken for this run's (same snapshot names, so eval
        would skip them)."""
        files = [p for p in self.out.iterdir() if (p.is_file() and RUN_FILES.match(p.name))
                 or (p.is_dir() and RUN_DIRS.match(p.name))]
        if not files:
            return
        target = self.out / time.strftime("replaced-%Y%m%d-%H%M%S")
        suffix = 1
        while target.exists():
            target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
            suffix += 1
        target.mkdir()
        for path in files:
            os.replace(path, target / path.name)
        self.line(f"note: moved the previous run's {len(files)} files (snapshots, grids, stats) to {target}")

    def write(self, name: str, write: Callable[[BinaryIO], Any]) -> Path:
        """Write file `name` in the run folder atomically (rank 0; other ranks write nothing)."""
        if self.enabled:
            self.open()
            atomic_write_bytes(self.out / name, write)
        return self.out / name

    def _read_kept_stats(self) -> list[str]:
        """The stats.jsonl lines up to the resumed image count (later ones belong to an interrupted attempt)."""
        path = self.out / STATS_FILE
        if self.resume_nimg <= 0 or not path.is_file():
            return []
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                if json.loads(line).get("cur_nimg", 0) <= self.resume_nimg:
                    kept.append(line)
            except (json.JSONDecodeError, AttributeError):
                continue
        return kept

    # -- ticks -----------------------------------------------------------------------------------
    def tick(self, record: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
        """Log one tick: a line on stdout, a line in stats.jsonl, scalars in TensorBoard."""
        if not self.enabled:
            return
        self.open()
        self.line(tick_line(record, extra))
        # strict JSON for every reader (jq, JavaScript): a diverged loss is null, never NaN or Infinity
        plain = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with open(self.out / STATS_FILE, "a") as f:
            f.write(json.dumps(plain, allow_nan=False) + "\n")
        tb = self._tensorboard()
        if tb is not None:
            for key, value in record.items():
                if key != "cur_nimg" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tb.add_scalar(key, value, global_step=int(record["cur_nimg"]))
            tb.flush()

    def _tensorboard(self) -> Any:
        if self._tb is None:
            writer = summary_writer()
            if writer is None:       # the optional extra is not installed: stats.jsonl only
                self._tb = False
                return None
            # purge_step hides what an interrupted attempt logged past the snapshot this run resumed from
            self._tb = writer(log_dir=str(self.out), purge_step=self.resume_nimg + 1 if self.resume_nimg else None)
        return self._tb or None

    # -- progress bar ----------------------------------------------------------------------------
    def start_progress(self, title: str, total_kimg: float, done_kimg: float) -> None:
        """Show a progress bar on stderr when it is a terminal (never in a log file)."""
        if not self._want_progress:
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = self.console or Console(stderr=True)
        if not console.is_terminal:
            return
        stdout = self._stdout or sys.stdout
        self._bar = Progress(TextColumn(f"[bold]{escape(title)}[/]"), BarColumn(),
                             TextColumn("{task.completed:.3f}/{task.total:.3f} kimg"), TimeElapsedColumn(),
                             TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                             redirect_stdout=stdout.isatty(), redirect_stderr=False)
        self._task = self._bar.add_task("train", total=total_kimg, completed=done_kimg, info="")
        self._bar.start()

    def update_progress(self, done_kimg: float, info: str = "") -> None:
        """Move the bar (if one is shown) to `done_kimg`, with `info` (running losses) beside it."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done_kimg, info=info)

    def stop_progress(self) -> None:
        """Remove the bar (before the closing lines, so they print below its last frame)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        """Stop the bar, close TensorBoard, release the folder lock."""
        self.stop_progress()
        if self._tb:
            self._tb.close()
        self._tb = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
