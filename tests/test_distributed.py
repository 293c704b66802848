"""Sweeps on Ray: a two-node local cluster gives the serial run's results, bit for bit, through one store."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits.jobs.executor import Executor, ModelSpec
from circuits.store import Gallery
from circuits.vocab import InputError

ALL = 10**9
RELATIONS = ["country_capital_city", "country_currency"]


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of two nodes on this machine, one CPU each: two workers, each on its own raylet."""
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 * 2**20},
    )
    nodes.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    nodes.wait_for_nodes()
    yield nodes.address
    if ray.is_initialized():
        ray.shutdown()
    nodes.shutdown()


@pytest.fixture()
def one_thread():
    """The serial run on one torch thread, as each Ray task runs (``task_cpus=1``): the same float sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scores(store: Path, relation: str) -> np.ndarray:
    return Gallery(store).load_scored("tiny-llama", relation).scores


def test_reuse_on_a_two_node_ray_cluster_equals_the_serial_sweep(
    cluster, tiny_llama, tmp_path, capsys, one_thread
) -> None:
    import ray

    from circuits.attribution.settings import ScoreSettings
    from circuits.cli import main
    from circuits.jobs import run_reuse

    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=ALL)
    serial = run_reuse(
        RELATIONS,
        model=tiny_llama,
        settings=settings,
        size=20,
        store=tmp_path / "serial",
        formats=("dot",),
        progress=False,
    ).to_dict()
    code = main(
        [
            "reuse",
            *RELATIONS,
            "--model",
            "tiny-llama",
            "--max-rank",
            str(ALL),
            "--max-pairs",
            "8",
            "--ig-steps",
            "2",
            "--size",
            "20",
            "--store",
            str(tmp_path / "ray"),
            "--quiet",
            "--json",
            "--executor",
            "ray",
            "--address",
            cluster,
        ]
    )
    assert code == 0
    distributed = json.loads(capsys.readouterr().out)
    ray.init(address=cluster)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    ray.shutdown()
    # the graphs the Ray tasks stored are the serial run's, bit for bit, and the sweep says they were scored
    for relation in RELATIONS:
        assert np.array_equal(_scores(tmp_path / "serial", relation), _scores(tmp_path / "ray", relation))
    assert [r["source"] for r in distributed["circuits"]] == ["scored", "scored"]
    keys = ("relation", "n_edges", "n_heads", "faithfulness", "faithfulness_interval")
    assert [{k: r[k] for k in keys} for r in distributed["circuits"]] == [
        {k: r[k] for k in keys} for r in serial["circuits"]
    ]
    assert distributed["matrices"] == serial["matrices"] and distributed["cross_task"] == serial["cross_task"]
    # every unit the tasks wrote reached the one manifest
    entries = Gallery(tmp_path / "ray").manifest()["entries"]
    assert {f"tiny-llama/{r}/scored" for r in RELATIONS} <= set(entries)


def test_main_job_on_ray_equals_the_serial_job(cluster, tiny_llama, tmp_path, one_thread) -> None:
    from circuits.jobs.job import JobSettings, run_job

    settings = JobSettings(
        relations=tuple(RELATIONS),
        max_pairs=8,
        ig_steps=2,
        analysis_pairs=6,
        analyses=("dla",),
        n_boot=10,
        n_splits=2,
        n_perm=2,
        reuse_size=20,
        channels_top=2,
        max_rank=ALL,
        positions=False,
    )
    serial = run_job(settings, tmp_path / "serial", model=tiny_llama, progress=False, report=False)
    distributed = run_job(
        settings,
        tmp_path / "ray",
        model=tiny_llama,
        progress=False,
        report=False,
        executor=Executor("ray", address=cluster),
    )
    assert distributed.relations == serial.relations
    assert distributed.reuse == serial.reuse and distributed.channels == serial.channels
    # the per-relation stages ran in the tasks; the driver only read them back
    stages = distributed.stages
    assert all(stages[f"{kind}/{r}"].reused for kind in ("score", "circuit", "dla") for r in RELATIONS)
    assert not stages["reuse"].reused


def test_a_task_error_reaches_the_caller_as_its_own_type(cluster) -> None:
    from circuits.relations import load_relation

    with pytest.raises(InputError, match="no_such_relation"):
        Executor("ray", address=cluster).map(load_relation, ["no_such_relation"], progress=False)


def test_the_serial_executor_never_imports_ray() -> None:
    code = (
        "import sys; from circuits.jobs.executor import Executor; import circuits.jobs.reuse, "
        "circuits.jobs.job, circuits.cli; assert Executor().map(abs, [-1], progress=False) == [1]; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_executor_options_are_checked_and_a_model_spec_loads_the_same_model(tiny_llama) -> None:
    with pytest.raises(InputError, match="--address needs --executor ray"):
        Executor(address="auto")
    with pytest.raises(InputError, match="at least 1 CPU"):
        Executor("ray", task_cpus=0)
    spec = ModelSpec.of(tiny_llama)
    assert spec == ModelSpec("tiny-llama", "cpu", "none", 0)
    again = spec.load()
    for a, b in zip(tiny_llama.bridge.parameters(), again.bridge.parameters(), strict=True):
        assert torch.equal(a, b)


def _record_many(args: tuple[str, int]) -> None:
    root, worker = args
    gallery = Gallery(root)
    for i in range(15):
        folder = Path(root) / "m" / f"w{worker}" / f"u{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "x.txt").write_text("x")
        gallery._record(folder, {"kind": "test"})


def test_processes_recording_at_once_lose_no_manifest_entry(tmp_path) -> None:
    with ProcessPoolExecutor(3) as pool:
        list(pool.map(_record_many, [(str(tmp_path), w) for w in range(3)]))
    assert len(Gallery(tmp_path).manifest()["entries"]) == 45
