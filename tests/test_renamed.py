"""Renamed words: the new names work, the old ones keep working for one version and say so, old files read.

Channels say sender/receiver as the graph does (0.4 said writer/reader); ``circuits reuse`` takes
``--similarity`` (0.4: ``--metric``, which on ``circuits score`` is the scoring metric). The jobs return
typed records whose ``to_dict()`` is the stored layout: the committed gallery's files read back into
them and come out byte for byte the same.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from circuits.channels import analyze, find_channels, validate_graph
from circuits.channels.predict import Channel
from circuits.channels.validate import CausalResult
from circuits.cli import build_parser, main
from circuits.graph import GraphShape, ScoredGraph
from circuits.jobs.channels import ChannelsReport
from circuits.jobs.reuse import ReuseReport
from circuits.jobs.reuse_test_record import ReuseTestRecord
from circuits.report.across import read_model

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "graphs" / "smollm2-135m"


@pytest.fixture(scope="module")
def analysis(tiny_llama):
    return analyze(tiny_llama)


# ------------------------------------------------------------------ channels: sender and receiver


def test_channels_use_sender_and_receiver(analysis):
    channel = find_channels(analysis, top=1, senders="heads")[0]
    assert channel.sender in analysis.senders.names and channel.sender.startswith("a")
    assert channel.receiver in analysis.receivers.names and channel.receiver.endswith(f"<{channel.kind}>")
    assert set(channel.to_dict()) >= {"sender", "receiver"} and "writer" not in channel.to_dict()
    w, r = analysis.senders.names.index(channel.sender), analysis.receivers.names.index(channel.receiver)
    assert (
        analysis.edge_matrix(analysis.whole)[analysis.senders.index[w], analysis.receivers.index[r]]
        == (analysis.whole[w, r])
    )


def test_old_channel_names_still_work_and_warn(analysis, tiny_llama):
    channel = find_channels(analysis, top=1)[0]
    with pytest.deprecated_call(match="'Channel.writer' is now 'Channel.sender'"):
        assert channel.writer == channel.sender
    with pytest.deprecated_call(match="'Channel.reader' is now 'Channel.receiver'"):
        assert channel.reader == channel.receiver
    with pytest.deprecated_call(match="'ChannelAnalysis.writers' is now 'ChannelAnalysis.senders'"):
        assert analysis.writers is analysis.senders
    with pytest.deprecated_call(match="readers"):
        assert analysis.readers is analysis.receivers
    with pytest.deprecated_call(match="'Senders.senders' is now 'Senders.index'"):
        assert analysis.senders.senders is analysis.senders.index
    with pytest.deprecated_call(match="keyword argument 'writers' is now 'senders'"):
        old = find_channels(analysis, top=3, writers="heads")
    assert old == find_channels(analysis, top=3, senders="heads")
    with pytest.raises(TypeError, match="senders= only"):
        find_channels(analysis, writers="heads", senders="mlps")
    shape = GraphShape.of(tiny_llama)
    z = analysis.edge_matrix(analysis.whole_z)
    graph = ScoredGraph(shape, np.nan_to_num(-(z - np.nanmin(z) + 1.0), nan=0.0))
    with pytest.deprecated_call(match="'writers' is now 'senders'"):
        assert validate_graph(analysis, graph, writers="all") == validate_graph(
            analysis, graph, senders="all"
        )
    import circuits.channels.composition as composition

    with pytest.deprecated_call(match="composition.Writers' is now 'circuits.channels.composition.Senders'"):
        assert composition.Writers is composition.Senders
    with pytest.deprecated_call(match="make_readers"):
        assert composition.make_readers is composition.make_receivers
    with pytest.raises(AttributeError):
        _ = composition.NoSuchName


def test_causal_check_takes_the_old_scope_with_a_warning(analysis, tiny_llama):
    from conftest import random_batch

    from circuits.channels import causal_check

    channel, batch = find_channels(analysis, top=1, senders="heads")[0], random_batch(tiny_llama)
    new = causal_check(tiny_llama, analysis, channel, batch, scope="sender", n_random=1, n_boot=0)
    with pytest.deprecated_call(match="scope='writer'"):
        old = causal_check(tiny_llama, analysis, channel, batch, scope="writer", n_random=1, n_boot=0)
    assert old == new and new.scope == "sender" and new.sender == channel.sender
    assert CausalResult.from_dict(new.to_dict()) == new
    stored_by_04 = {**new.to_dict(), "scope": "writer", "writer": new.sender, "reader": new.receiver}
    del stored_by_04["sender"], stored_by_04["receiver"]
    assert CausalResult.from_dict(stored_by_04) == new


def test_the_committed_channels_file_of_04_still_loads():
    data = json.loads((GALLERY / "channels" / "channels.json").read_text())
    assert "writer" in data["channels"][0] and "writers" in data  # the file is as 0.4 wrote it
    report = ChannelsReport.from_dict(data)
    assert report.model == "smollm2-135m" and report.n_senders == data["writers"] > 0
    assert report.channels[0].sender == data["channels"][0]["writer"]
    assert report.channels[0].receiver == data["channels"][0]["reader"]
    assert [v.to_dict() for v in report.validation] == data["validation"]
    assert report.overlay is not None and report.overlay.relation == data["overlay"]["relation"]
    again = report.to_dict()  # written now: the keys of today, everything else as it was
    assert again["n_receivers"] == data["readers"] and "writers" not in again
    assert again["null"] == data["null"] and again["settings"] == data["settings"]
    assert ChannelsReport.from_dict(json.loads(json.dumps(again))).to_dict() == again
    # the job's stage record of 0.4 holds channels with the old keys too
    stage = json.loads((GALLERY / "stages" / "channels.json").read_text())["result"]
    assert [Channel.from_dict(c).to_dict() for c in stage["channels"]] == [
        c.to_dict() for c in report.channels[:5]
    ]


def test_the_report_reads_channels_files_old_and_new(tmp_path: Path):
    old = json.loads((GALLERY / "channels" / "channels.json").read_text())
    for name, data in (("old", old), ("new", ChannelsReport.from_dict(old).to_dict())):
        folder = tmp_path / name / "m" / "channels"
        folder.mkdir(parents=True)
        (folder / "channels.json").write_text(json.dumps(data))
        read = read_model(folder.parent, {}).channels
        assert read is not None
        assert read.data["n_senders"] == old["writers"] and read.data["n_receivers"] == old["readers"]
        assert read.data["channels"][0]["sender"] == old["channels"][0]["writer"]
        assert "writer" not in read.data["channels"][0]


def test_channels_report_round_trips_and_keeps_the_old_dict_reading(tiny_llama, analysis):
    from circuits.jobs import run_channels

    report = run_channels(tiny_llama, top=3, progress=False)
    stored = json.loads(json.dumps(report.to_dict()))
    assert ChannelsReport.from_dict(stored).to_dict() == stored
    assert stored["n_senders"] == len(report.analysis.senders.names)
    with pytest.deprecated_call(match="dict-style access"):
        assert report["channels"] == stored["channels"]
    with pytest.deprecated_call(match="as_dict"):
        assert report.as_dict(share=0.9, by="component") == report.to_dict()


def test_channels_command_prints_senders_and_receivers(capsys):
    assert main(["channels", "--model", "tiny-gpt2", "--top", "2"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("sender"))
    assert header.split()[:2] == ["sender", "receiver"]
    assert "senders x" in out and "writer" not in out and "reader" not in out


# ------------------------------------------------------------------ reuse: --similarity


def test_reuse_takes_similarity_and_the_old_metric_spelling(capsys):
    parser = build_parser()
    assert parser.parse_args(["reuse", "a", "b"]).similarity == "edge_jaccard"
    assert parser.parse_args(["reuse", "a", "b", "--similarity", "head_share"]).similarity == "head_share"
    capsys.readouterr()
    assert parser.parse_args(["reuse", "a", "b", "--metric", "node_jaccard"]).similarity == "node_jaccard"
    err = capsys.readouterr().err
    assert (
        err
        == "circuits reuse: --metric is now --similarity; the old spelling goes away in the next version\n"
    )
    with pytest.raises(SystemExit):
        main(["reuse", "--help"])
    shown = capsys.readouterr().out
    assert "--similarity" in shown and "--metric" not in shown  # the old spelling is not offered
    for spelling in ("--similarity", "--metric"):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["reuse", "a", "b", spelling, "cosine"])
        assert stop.value.code == 2
    # --metric on score is still the scoring metric
    assert parser.parse_args(["score", "r", "--out", "o", "--metric", "prob"]).metric == "prob"


def test_the_committed_reuse_report_reads_back_unchanged():
    stored = json.loads((GALLERY / "reuse" / "report.json").read_text())
    report = ReuseReport.from_dict(stored)
    assert report.similarity == stored["metric"] and report.matrix.names == stored["relations"]
    assert report.most_similar.a == stored["most_similar"]["a"] and report.core.k == stored["core"]["k"]
    assert [row.relation for row in report.circuits] == stored["relations"]
    assert report.to_dict() == stored
    with pytest.deprecated_call(match="'ReuseReport.metric' is now 'ReuseReport.similarity'"):
        assert report.metric == report.similarity
    with pytest.deprecated_call(match="dict-style access"):
        assert report["relations"] == stored["relations"]


# ------------------------------------------------------------------ the reuse test's record


def test_the_committed_reuse_test_record_round_trips():
    stored = json.loads((GALLERY / "reuse_test" / "reuse_test.json").read_text())
    record = ReuseTestRecord.from_dict(stored)
    assert record.to_dict() == stored
    assert record.n_circuits == stored["n_circuits"] and record.core == stored["core"]
    row, first = record.relations[0], stored["relations"][0]
    assert (row.relation, row.n_prompts, row.n_specific) == (
        first["relation"],
        first["n_prompts"],
        first["n_specific"],
    )
    assert row.measures.value("accuracy", "core").value == first["accuracy"]["core"]["value"]
    assert (
        record.pooled.drop("logit_diff", "core_vs_specific").low
        == (stored["pooled"]["drop_logit_diff"]["core_vs_specific"]["low"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ReuseTestRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    with pytest.deprecated_call():
        assert record["k"] == stored["k"]
