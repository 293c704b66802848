"""Where a sweep's tasks run: one after another in this process, or as Ray tasks on a cluster.

A sweep (the reuse sweep, the main job) has one task per relation. With the
serial executor, the default, they run here in order and Ray is never
imported. With ``Executor("ray")`` each becomes a Ray task: on a local Ray
instance started for the sweep (every core of this machine), or on an
existing cluster (``address="auto"`` or ``"HOST:PORT"``). A task loads the
model by name, runs its relation and writes its results through the same
atomic store as a serial run; only small JSON-ready records travel back.
Every node must have the package installed and see the store's folder (a
shared file system on a real cluster).

Results equal the serial run's: each task seeds itself the same way, and runs
torch with ``task_cpus`` threads. With as many threads as the serial run
they are equal bit for bit; with another thread count, float32 sums are
added in another order (differences near 1e-6 of a score).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.progress import progress_bar
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["EXECUTORS", "Executor", "ModelSpec", "portable_arg"]

EXECUTORS = ("serial", "ray")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a task loads the sweep's model again: what :func:`~circuits.models.load_model` was given.

    >>> ModelSpec("tiny-llama").kwargs()
    {'device': 'cpu', 'processing': 'none', 'seed': 0}
    """

    name: str
    device: str = "cpu"
    processing: str = "none"
    seed: int = 0

    @classmethod
    def of(cls, model: LoadedModel) -> ModelSpec:
        """The spec of a :class:`~circuits.models.LoadedModel` (its name, device, processing and seed)."""
        return cls(model.name, str(model.device), model.processing, int(model.info.get("seed", 0)))

    def kwargs(self) -> dict[str, Any]:
        return {"device": self.device, "processing": self.processing, "seed": self.seed}

    def load(self) -> LoadedModel:
        from circuits.models import load_model

        return load_model(self.name, **self.kwargs())  # type: ignore[arg-type]


def portable_arg(arg: str | Path) -> str:
    """A relation argument every worker reads the same: a file's absolute path, a bundled name as it is.

    >>> portable_arg("country_capital_city")
    'country_capital_city'
    """
    path = Path(arg)
    return str(path.resolve()) if path.is_file() else str(arg)


@dataclasses.dataclass(frozen=True)
class Executor:
    """Runs a sweep's tasks in this process (``"serial"``) or on Ray (``"ray"``).

    Parameters
    ----------
    kind : {"serial", "ray"}
        In-process, in order (no Ray import), or one Ray task per item.
    address : str, optional
        Ray only: ``None`` starts a local Ray instance for the sweep and stops
        it after; ``"auto"`` or ``"HOST:PORT"`` joins an existing cluster (as
        ``ray.init(address=...)``; ``RAY_ADDRESS`` works too).
    task_cpus : int
        CPUs Ray reserves for each task; torch runs that many threads in it.
    task_gpus : float
        GPUs Ray reserves for each task (for ``--device cuda`` on a cluster).

    Examples
    --------
    >>> Executor().map(lambda x: x * x, [1, 2, 3], progress=False)
    [1, 4, 9]
    >>> Executor("dask")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown executor 'dask'; valid: serial, ray
    >>> Executor("serial", address="auto")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: --address needs --executor ray (the serial executor runs here)
    """

    kind: str = "serial"
    address: str | None = None
    task_cpus: int = 1
    task_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(f"unknown executor {self.kind!r}; valid: {', '.join(EXECUTORS)}")
        if self.address is not None and self.kind != "ray":
            raise InputError("--address needs --executor ray (the serial executor runs here)")
        if self.task_cpus < 1 or self.task_gpus < 0:
            raise InputError(
                f"a task needs at least 1 CPU and no negative GPUs, not {self.task_cpus} CPUs "
                f"and {self.task_gpus} GPUs"
            )

    @property
    def distributed(self) -> bool:
        return self.kind == "ray"

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "tasks", progress: bool = True
    ) -> list[Any]:
        """``[fn(item) for item in items]``, in order; on Ray, every item is one task.

        ``fn`` and the items must be picklable (a module-level function or a
        ``functools.partial`` of one), and so must what ``fn`` returns. An
        exception in a task is raised here, as its own type.
        """
        bar = progress_bar(len(items), desc, enabled=progress)
        try:
            if not self.distributed:
                out = []
                for item in items:
                    out.append(fn(item))
                    bar.update(1)
                return out
            return self._ray_map(fn, items, bar)
        finally:
            bar.close()

    def _ray_map(self, fn: Callable[[Any], Any], items: Sequence[Any], bar: Any) -> list[Any]:
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level="warning")
            except ConnectionError as error:
                raise InputError(
                    f"could not join the Ray cluster at {self.address!r}: {error}; start one with "
                    "`ray start --head` or leave --address out for a local instance"
                ) from None
        try:
            task = ray.remote(num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=0)(_in_task)
            refs = [task.remote(fn, item, self.task_cpus) for item in items]
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
            try:
                return ray.get(refs)
            except ray.exceptions.RayTaskError as error:
                raise error.as_instanceof_cause() from None
        finally:
            if started_here:
                ray.shutdown()


def _in_task(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    """One Ray task: ``fn(item)`` with torch on ``threads`` threads (the CPUs Ray gave it)."""
    import torch

    torch.set_num_threads(threads)
    return fn(item)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "--executor ray needs Ray: pip install 'circuit-graph-engine[distributed]' (or pip install ray)"
        ) from None
    return ray
