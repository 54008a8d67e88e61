"""Checking a run's options before any work, and deciding whether an existing run folder may be resumed.

Every option is validated for type, finiteness and range up front, so a typo such as `--kimg nan` or
`--set lr_g=abc` is one line naming the option, never a traceback halfway through building the run.
`settings_mismatch` compares the settings recorded in a snapshot with the current ones: a run folder is
only continued with the settings that made it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ganbench.errors import ConfigError

SEED_LIMIT = 2 ** 32        # numpy's RandomState range, which NVlabs seeds use
MIN_KIMG = 0.001            # one image: shorter lengths round to zero images


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_finite(name: str, value: Any) -> None:
    """Raise ConfigError when `value` (or anything nested in it) is a NaN or infinite number."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value}: must be a finite number")
    if isinstance(value, (list, tuple)):
        for item in value:
            check_finite(name, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_finite(f"{name}.{key}", item)


def check_kimg(flag: str, value: Any, optional: bool = False) -> None:
    """A length in kimg: a finite number of at least one image."""
    if value is None and optional:
        return
    if not _is_number(value) or not math.isfinite(value) or value < MIN_KIMG:
        raise ConfigError(f"{flag} {_show(value)}: must be a finite number of kimg, at least {MIN_KIMG} (one image)")


def check_seed(value: Any) -> None:
    """A seed numpy, torch and NVlabs' tools all accept: an int from 0 to 2**32 - 1."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"--seed {_show(value)}: must be an integer from 0 to {SEED_LIMIT - 1}")


def check_run_options(opts: Any) -> None:
    """Validate a TrainOptions' own fields (lengths, seed, batch, grid, network overrides) before any work."""
    check_kimg("--kimg", opts.kimg)
    check_kimg("--snapshot-kimg", opts.snapshot_kimg)
    check_kimg("tick_kimg", opts.tick_kimg, optional=True)
    check_kimg("stop_kimg", opts.stop_kimg, optional=True)
    check_seed(opts.seed)
    check_out_outside_data(opts.data, opts.out)
    if opts.batch is not None and (not isinstance(opts.batch, int) or isinstance(opts.batch, bool) or opts.batch < 1):
        raise ConfigError(f"--batch {_show(opts.batch)}: must be a positive integer")
    if not isinstance(opts.resolution, int) or isinstance(opts.resolution, bool):
        raise ConfigError(f"--resolution {_show(opts.resolution)}: must be an integer power of two")
    grid = opts.grid
    if (not isinstance(grid, (list, tuple)) or len(grid) != 2
            or not all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= 64 for g in grid)):
        raise ConfigError(f"grid {_show(grid)}: must be two integers from 1 to 64 (columns, rows)")
    for key, value in dict(opts.network).items():
        check_finite(f"--set {key}", value)
        check = NETWORK_CHECKS.get(key)
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(f"--set {key}={_show(value)}: {problem}")
    _check_channels(dict(opts.network), opts.resolution)


def check_out_outside_data(data: Any, out: Any) -> None:
    """The run folder may not be the dataset folder or inside it: its snapshots, grids and logs would become part
    of the dataset (a resume then fails on `events.out.tfevents...` as a non-image). A .zip / .npz data file
    cannot hold a folder; `shapes` is embedded."""
    from ganbench.data.sources import EMBEDDED

    spec = str(data)
    if spec.partition(":")[0] in EMBEDDED:
        return
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        return
    root, run = folder.resolve(), Path(out).expanduser().resolve()
    if run == root or root in run.parents:
        raise ConfigError(f"--out {out} is inside the dataset folder --data {data}"
                          f"{'' if str(root) == spec else f' ({root})'}: snapshots, grids and logs would become "
                          f"part of the dataset; choose an --out outside it")


def _check_channels(network: dict[str, Any], resolution: int) -> None:
    """At least one feature map at the output resolution: NVlabs' channel_base / resolution (StyleGAN2/3) and
    ProGAN's fmap_base / (resolution / 2) channels; fewer was a ZeroDivisionError inside the layers."""
    minimum = {"channel_base": resolution, "fmap_base": max(resolution // 2, 1)}
    if "fmap_decay" in network:      # another decay moves the smallest layer: left to the model builder
        minimum.pop("fmap_base")
    for key, least in minimum.items():
        value = network.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < least:
            raise ConfigError(f"--set {key}={value}: leaves no channels at {resolution} px; must be at least "
                              f"{least} at this resolution")


# -- training settings (`--set KEY=VALUE`, family defaults) ----------------------------------------

def _number(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False,
            optional: bool = False) -> Callable[[Any], str | None]:
    """A check for a finite number in [lo, hi] (open ends where asked); None passes when optional."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    span = f"in {left}{lo:g}, {hi:g}{right}" if math.isfinite(hi) else (f"> {lo:g}" if lo_open else f">= {lo:g}")

    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if not _is_number(v) or not math.isfinite(v):
            return f"must be a finite number {span}" + (" or None" if optional else "")
        if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
            return f"must be {span}"
        return None

    return check


def _integer(lo: int, optional: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            return f"must be an integer >= {lo}" + (" or None" if optional else "")
        return None

    return check


def _betas(v: Any) -> str | None:
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(_is_number(b) and math.isfinite(b) and 0 <= b < 1 for b in v)):
        return "must be two numbers in [0, 1), e.g. (0, 0.99)"
    return None


def _name_in(registry: Callable[[], Any], optional: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        known = registry()
        if not isinstance(v, str) or v not in known:
            return f"must be one of {', '.join(sorted(known))}" + (" or None" if optional else "")
        return None

    return check


def _dict_or_none(v: Any) -> str | None:
    return None if v is None or isinstance(v, dict) else "must be a dict such as {'start_res': 4} or None"


def _level_table(kind: type) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        from ganbench.train.progressive import table_problem

        return table_problem(v, kind)

    return check


def _one_of(*values: Any) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if any(v == x and type(v) is type(x) for x in values) else \
            f"must be one of {', '.join(map(str, values))}"

    return check


def _loss_names() -> list[str]:
    from ganbench.train.losses import LOSSES

    return LOSSES.names()


def _augment_names() -> list[str]:
    from ganbench.train.augment import PRESETS

    return list(PRESETS)


# One check per key of TRAIN_DEFAULTS (loop.py); keys a family adds are only checked for finiteness.
TRAIN_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "loss": _name_in(_loss_names),
    "lr_g": _number(0, lo_open=True), "lr_d": _number(0, lo_open=True),
    "betas": _betas, "eps": _number(0, lo_open=True),
    "r1_gamma": _number(0), "r1_interval": _integer(1, optional=True),
    "pl_weight": _number(0, optional=True), "pl_interval": _integer(1, optional=True),
    "pl_decay": _number(0, 1), "pl_batch_shrink": _integer(1), "style_mixing": _number(0, 1),
    "ema_kimg": _number(0, optional=True), "ema_rampup": _number(0, optional=True),
    "augment": _name_in(_augment_names, optional=True), "ada_target": _number(0, 1, optional=True),
    "ada_interval": _integer(1), "ada_kimg": _number(0, lo_open=True), "augment_p": _number(0, 1),
    "progressive": _dict_or_none, "blur_sigma": _number(0), "blur_fade_kimg": _number(0),
    "gp_lambda": _number(0), "drift": _number(0),
    "batch_schedule": _level_table(int), "lr_schedule": _level_table(float),
    "sched_repeats": _integer(1), "reset_adam_per_level": _one_of(True, False),
    "step_order": _one_of("g_first", "d_first"), "ema_step_beta": _number(0, 1, hi_open=True, optional=True),
}


# Network options (`--set`) whose range is the same in every family that has them; the model builder checks the
# rest. Without these, `channel_base=0` was a ZeroDivisionError and `mapping_layers=-2` a RuntimeError mid-run.
NETWORK_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "z_dim": _integer(0), "c_dim": _integer(0), "w_dim": _integer(1), "img_channels": _integer(1),
    "mapping_layers": _integer(1), "num_layers": _integer(1),
    "channel_base": _integer(1), "channel_max": _integer(1), "fmap_base": _integer(1), "fmap_max": _integer(1),
    "num_fp16_res": _integer(0), "d_num_fp16_res": _integer(0),
    "conv_clamp": _number(0, lo_open=True, optional=True), "d_conv_clamp": _number(0, lo_open=True, optional=True),
    "mbstd_group_size": _integer(1, optional=True), "mbstd_num_channels": _integer(0),
    "w_avg_beta": _number(0, 1), "magnitude_ema_beta": _number(0, 1), "mapping_lr_multiplier": _number(0, lo_open=True),
    "fmap_decay": _number(0), "blur_init_sigma": _number(0), "margin_size": _integer(0),
    "filter_size": _integer(1), "conv_kernel": _integer(1), "g_channel_mult": _integer(1),
}


def check_train_settings(settings: dict[str, Any], given: set[str]) -> None:
    """Validate the merged training settings; `given` names the keys the user set (named as `--set`)."""
    for key, value in settings.items():
        where = f"--set {key}" if key in given else f"training setting {key}"
        check_finite(where, value)
        check = TRAIN_CHECKS.get(key)
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(f"{where}={_show(value)}: {problem}")


# -- resuming --------------------------------------------------------------------------------------

# Recorded run settings that may change between attempts of one run: its length (total_kimg, and kimg, which
# snapshots before it was recorded as --kimg held as the preset's published length), how many processes
# share it (the loop re-shards the data), and the spelling of --data (its content identity is compared).
RESUMABLE_CHANGES = frozenset({"total_kimg", "kimg", "world_size", "data"})
# Lazy-regularisation intervals, where None is NVlabs' "no lazy regularisation": the run does the same as with 1
# (the loop passes None on to the loss), so a run recorded with one resumes with the other.
REG_INTERVAL_KEYS = ("r1_interval", "pl_interval")
FLAGS = {"dataset": "--data", "batch": "--batch", "seed": "--seed", "augment_pipe": "--augment/--augpipe",
         "crop": "--crop", "resize": "--resize", "mirror": "--mirror",
         "resume_from": "--resume-from", "freeze_d": "--freeze-d"}


def _same_file(recorded: Any, current: Any) -> bool:
    """Whether two --resume-from paths name one file: absolute, relative to another folder, or (in snapshots
    written before the path was recorded absolute) a relative path the current one ends with."""
    if recorded is None or current is None:
        return recorded is current
    old, new = Path(str(recorded)), Path(str(current))
    if old.expanduser().resolve() == new.expanduser().resolve():
        return True
    return not old.is_absolute() and new.expanduser().resolve().as_posix().endswith("/" + old.as_posix().lstrip("./"))


def _start_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """A run started from a pretrained file resumes only from that same file (and one started from scratch only
    without one): said first, since the pretrained defaults (ada_kimg, ...) differ as a consequence."""
    recorded, current = old.get("resume_from"), new.get("resume_from")
    if _same_file(recorded, current):
        return []
    return [f"--resume-from: recorded {recorded or '(none: trained from scratch)'}, now {current or '(none)'}"]


def _plain(value: Any) -> Any:
    """Tuples as lists, so settings that went through a file compare equal to fresh ones."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}   # {4: 128} and {"4": 128} (via JSON) alike
    return value


def _same_setting(key: str, old: Any, new: Any) -> bool:
    """Whether two recorded values of training setting `key` make the same run (None and 1 for an interval)."""
    if key in REG_INTERVAL_KEYS:
        old, new = (1 if v is None else v for v in (old, new))
    return _plain(old) == _plain(new)


def settings_mismatch(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'FLAG: recorded X, now Y' for every recorded run setting that differs from the current one.

    Compares the dataset identity, seed and every training setting (`metadata["train"]`) present in
    both; keys absent from an older snapshot are not compared.
    """
    out = []
    for key in ("dataset", "seed"):
        if key in recorded and _plain(recorded[key]) != _plain(current.get(key)):
            out.append(f"{FLAGS[key]}: recorded {recorded[key]}, now {current.get(key)}")
    old, new = recorded.get("train") or {}, current.get("train") or {}
    start = _start_mismatch(old, new)
    out = start + out
    batch_changed = "batch" in old and "batch" in new and _plain(old["batch"]) != _plain(new["batch"])
    for key in sorted(set(old) & set(new) - RESUMABLE_CHANGES - {"resume_from", "resume_from_format"}):
        if start and key in ("ada_kimg", "ema_rampup", "blur_sigma"):   # consequences of the start named above
            continue
        if not _same_setting(key, old[key], new[key]):
            # a family's batch rule (NVIDIA's ema_kimg = batch * 10 / 32) changes such a key with --batch alone
            flag = FLAGS.get(key) or (f"{key} (follows --batch, or --set {key})" if batch_changed else f"--set {key}")
            out.append(f"{flag}: recorded {old[key]}, now {new[key]}")
    return out
