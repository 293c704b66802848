"""The MLP decomposition: parts that sum to the hooked MLP output, gains and pushes checked independently."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import run_cli

from circuits.jobs.mechanisms import PromptChoice, known_prompts
from circuits.mechanisms.lens import FrozenNorm
from circuits.mechanisms.mlp_parts import mlp_decomposition
from circuits.mechanisms.mlp_split import decompose, gains, input_components
from circuits.relations.roles import role_positions
from circuits.vocab import InputError, hook_point

ALL = PromptChoice(max_pairs=6, max_rank=10**9)
TINY = ["--model", "tiny-llama", "--max-rank", "1000000000", "--max-pairs", "6", "--boot", "50", "--quiet"]


def strict_json(text):
    def refuse(constant):
        raise AssertionError(f"non-finite number {constant} in a record")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def biased():
    """Fresh tiny models whose biases and norm weights are random (the tiny models' are 0 and 1)."""
    from circuits.models import load_model

    models = {}
    gen = torch.Generator().manual_seed(7)
    for name in ("tiny-llama", "tiny-gpt2"):
        model = load_model(name)
        with torch.no_grad():
            for param in model.bridge.parameters():
                if param.dim() == 1:
                    param.add_(0.5 * torch.randn(param.shape, generator=gen))
        models[name] = (model, known_prompts(model, "country_capital_city", ALL)[0])
    return models


@pytest.fixture(scope="module")
def llama_prompts(tiny_llama):
    return known_prompts(tiny_llama, "country_capital_city", ALL)[0]


def positions_of(prompts, position):
    if position == "last":
        return prompts.last
    return torch.tensor([r.last_subject for r in prompts.roles])


# ------------------------------------------------------------ the sum


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("position", ["last", "subject"])
def test_parts_sum_to_the_hooked_mlp_output_at_every_layer(biased, name, position):
    model, prompts = biased[name]
    _, cache = model.bridge.run_with_cache(prompts.tokens)
    rows, where = prompts.rows(), positions_of(prompts, position)
    for layer in range(model.n_layers):
        names, components, x = input_components(model, prompts, layer, position=position)
        heads = int(model.n_heads) * (layer + 1)
        has_bias = name == "tiny-gpt2"  # Llama has no biases, only (here random) norm weights
        assert names[0] == "input" and len(names) == 1 + heads + layer + has_bias
        assert names[1 + heads : 1 + heads + layer] == [f"m{i}" for i in range(layer)]
        assert (names[-1] == "bias") == has_bias
        real_in = cache[hook_point("mlp_in", layer)][rows, where]
        torch.testing.assert_close(x, real_in)
        torch.testing.assert_close(components.sum(1), real_in, rtol=1e-4, atol=1e-4)
        parts, constant = decompose(model, layer, components, x)
        real_out = cache[hook_point("mlp_out", layer)][rows, where]
        scale = real_out.abs().max().item()
        assert (constant.abs().max().item() > 1e-3) == has_bias  # the biases really take part
        torch.testing.assert_close(parts.sum(1) + constant, real_out, rtol=1e-4, atol=1e-4 * scale)


def test_a_model_without_biases_has_no_bias_component_and_a_zero_constant(tiny_llama, llama_prompts):
    prompts = llama_prompts
    names, components, x = input_components(tiny_llama, prompts, 2)
    assert "bias" not in names and names[-1] == "m1"
    _, constant = decompose(tiny_llama, 2, components, x)
    assert constant.abs().max().item() == 0.0


# ------------------------------------------------------------ gain on hand-built MLPs


class _RMS(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.variance_epsilon = 0.0

    def forward(self, x):  # the norm's form is probed against its output
        return self.weight * x * (x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon).rsqrt()


def _stub(W_in, W_out, act):
    mlp = SimpleNamespace(
        W_in=W_in,
        W_out=W_out,
        W_gate=None,
        b_in=None,
        b_out=None,
        b_gate=None,
        original_component=SimpleNamespace(act_fn=act),
    )
    block = SimpleNamespace(ln2=_RMS(W_in.shape[0]), mlp=mlp)
    return SimpleNamespace(name="stub", n_layers=1, bridge=SimpleNamespace(blocks=[block]))


def _components(n=4, c=3, d=6, seed=0):
    components = torch.randn(n, c, d, generator=torch.Generator().manual_seed(seed))
    x = components.sum(1)
    rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    return components / rms[:, None], x / rms  # the input has rms 1: the frozen scale is 1


@pytest.mark.parametrize("k", [-0.5, 0.0, 2.0])
def test_a_part_that_is_k_times_the_component_has_gain_k(k):
    components, x = _components()
    d = x.shape[-1]
    model = _stub(torch.eye(d), k * torch.eye(d), lambda t: t)  # MLP(x) = k x / rms(x)
    parts, constant = decompose(model, 0, components, x)
    torch.testing.assert_close(parts, k * components)
    assert constant.abs().max().item() == 0.0
    torch.testing.assert_close(gains(parts, components, x), torch.full(parts.shape[:2], k))
    orthogonal = torch.stack([components[..., 1], -components[..., 0]], -1)
    assert gains(orthogonal, components[..., :2], x[..., :2]).abs().max() < 1e-6


def test_neurons_with_a_zero_pre_activation_go_to_the_constant_and_the_sum_stays_exact():
    components, x = _components(d=5)
    W_in = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    W_in[:, 0] = 0.0  # neuron 0 has z = 0: act(z) / z is undefined, act(0) = 1
    W_out = torch.randn(7, 5, generator=torch.Generator().manual_seed(2))
    model = _stub(W_in, W_out, lambda t: t + 1.0)
    parts, constant = decompose(model, 0, components, x)
    torch.testing.assert_close(constant, W_out[0].expand_as(x))
    torch.testing.assert_close(parts.sum(1) + constant, (x @ W_in + 1.0) @ W_out, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ the analysis


def test_reported_gain_and_push_match_an_independent_computation(biased):
    model, prompts = biased["tiny-gpt2"]
    result = mlp_decomposition(model, prompts, layers=[1], position="subject", n_boot=20, progress=False)
    layer = result.layer(1)
    assert [d.layer for d in result.layers] == [1] and result.residual < 1e-4
    names, components, x = input_components(model, prompts, 1, position="subject")
    parts, constant = decompose(model, 1, components, x)
    parts[:, -1] += constant  # the bias component carries the MLP's own constants
    gain = ((parts * components).sum(-1) / components.pow(2).sum(-1)).mean(0)
    for i, name in enumerate(names):
        assert layer.component(name).gain.value == pytest.approx(float(gain[i]), rel=1e-4, abs=1e-6)
    # the whole MLP's push: its hooked output through the frozen final norm onto the centred answer
    _, cache = model.bridge.run_with_cache(prompts.tokens)
    rows, where = prompts.rows(), positions_of(prompts, "subject")
    final = FrozenNorm(model.bridge.ln_final, cache[hook_point("final_in")][rows, where])
    W_U = model.bridge.W_U.detach().float()
    direction = W_U[:, prompts.answer].T - W_U.mean(1)
    push = (final(cache[hook_point("mlp_out", 1)][rows, where]) * direction).sum(-1)
    assert layer.total_push.value == pytest.approx(float(push.mean()), rel=1e-4, abs=1e-6)
    assert sum(c.push.value for c in layer.components) == pytest.approx(
        float(push.mean()), rel=1e-4, abs=1e-6
    )
    assert layer.by_push()[0].push.value == max(c.push.value for c in layer.components)


def test_subject_moving_heads_follow_the_attention_from_the_last_position_grouped_query(
    tiny_llama, llama_prompts
):
    prompts = llama_prompts
    result = mlp_decomposition(tiny_llama, prompts, layers=[1, 2], n_boot=20, progress=False)
    _, cache = tiny_llama.bridge.run_with_cache(prompts.tokens)
    group = tiny_llama.n_heads // tiny_llama.n_kv_heads
    moved = {h.head: h.moved.value for h in result.moving_heads}
    assert len(moved) == tiny_llama.n_layers * tiny_llama.n_heads
    for layer, head in [(0, 0), (1, 3), (2, 1)]:  # query head 3 reads key/value head 1
        W_O = tiny_llama.bridge.blocks[layer].attn.W_O[head].detach()
        norms = []
        for i, roles in enumerate(prompts.roles):
            last = int(prompts.last[i])
            out = torch.zeros(W_O.shape[-1])
            for s in role_positions(roles)["subject"]:
                a = cache[hook_point("pattern", layer)][i, head, last, s]
                out += a * cache[hook_point("v", layer)][i, s, head // group] @ W_O
            norms.append(out.norm().item())
        assert moved[f"a{layer}.h{head}"] == pytest.approx(np.mean(norms), rel=1e-4)
    values = [h.moved.value for h in result.moving_heads]
    assert values == sorted(values, reverse=True)
    top = result.top_moving()
    assert len(top) == 5 and top == [h.head for h in result.moving_heads[:5]]
    for part in result.moving_parts:  # a head's part in every decomposed MLP that reads it, and only there
        assert part.head in top and part.layer >= int(part.head[1 : part.head.index(".")])
        assert part.gain == result.layer(part.layer).component(part.head).gain


def test_layer_and_position_errors_name_the_value_and_what_is_valid(tiny_llama, llama_prompts):
    prompts = llama_prompts
    with pytest.raises(InputError, match=r"^layer 3 is out of range; tiny-llama has layers 0-2$"):
        mlp_decomposition(tiny_llama, prompts, layers=[0, 3], progress=False)
    with pytest.raises(InputError, match=r"^unknown position 'first'; valid: last, subject$"):
        mlp_decomposition(tiny_llama, prompts, position="first", progress=False)


# ------------------------------------------------------------ job, figure, command


def test_the_job_writes_a_strict_json_record_and_an_svg_figure(tiny_gpt2, tmp_path):
    from circuits.jobs.analyses import run_analysis
    from circuits.records.mlp import MLPRecord, MLPSettings

    result, files = run_analysis(
        "mlp", tiny_gpt2, "country_capital_city", ALL, MLPSettings(n_boot=30), out=tmp_path, progress=False
    )
    assert files == [tmp_path / "mlp.json", tmp_path / "mlp.svg"]
    stored = strict_json((tmp_path / "mlp.json").read_text())
    assert stored == json.loads(json.dumps(result.to_dict())) and stored["analysis"] == "mlp"
    # read back, the record holds the listed components only, and writes the same file again
    again = MLPRecord.from_dict(stored)
    assert not again.complete and strict_json(json.dumps(again.to_dict())) == stored
    assert [d["layer"] for d in stored["layers"]] == [0, 1] and stored["position"] == "last"
    assert stored["max_relative_residual"] < 1e-4 and stored["prompts"]["max_pairs"] == 6
    last = stored["layers"][-1]
    assert last["top_by_push"][0] == max(last["components"], key=lambda c: c["push"]["value"])["name"]
    svg = (tmp_path / "mlp.svg").read_text()
    assert (
        ET.fromstring(svg).tag.endswith("svg")
        and "MLP decomposition" in svg
        and result.top_moving()[0] in svg
    )


def test_command_prints_json_and_writes_files_for_a_bundled_relation(capsys, tmp_path):
    code, out, err = run_cli(capsys, "mlp", "country_capital_city", *TINY, "--json", "--out", str(tmp_path))
    assert code == 0, err
    record = strict_json(out)
    assert record["analysis"] == "mlp" and record["model"] == "tiny-llama" and record["n_boot"] == 50
    assert strict_json((tmp_path / "mlp.json").read_text()) == record
    assert ET.parse(tmp_path / "mlp.svg").getroot().tag.endswith("svg")


def test_command_on_an_lre_file_never_seen_with_chosen_layers_and_position(capsys, tmp_path, river_lre):
    lre = river_lre
    code, out, err = run_cli(
        capsys, "mlp", str(lre), *TINY, "--layer", "2", "--layer", "1", "--position", "subject", "--top", "3"
    )
    assert code == 0, err
    assert "tiny-llama / river_country:" in out and "(8 of 8 facts known)" in out
    assert "at the last subject token" in out and "subject-moving heads" in out
    rows = [line.split()[0] for line in out.splitlines() if line.strip().startswith("m") and "[" in line]
    assert rows[:2] == ["m1", "m2"]
    assert "top 3 parts by push" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "40"], "layer 40 is out of range; tiny-llama has layers 0-2"),
        (["--layer", "1,x"], "--layer takes layer numbers"),
        (["--position", "middle"], "unknown position 'middle'; valid: last, subject"),
    ],
)
def test_command_errors_exit_with_status_2(capsys, argv, message):
    code, _, err = run_cli(capsys, "mlp", "country_capital_city", *TINY, *argv)
    assert code == 2 and message in err


def test_command_and_figure_modules_do_not_import_torch():
    code = (
        "import sys, circuits.records.mlp, circuits.draw.mlp_figures, circuits.cli; "
        "circuits.cli.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
