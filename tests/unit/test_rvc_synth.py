"""singer's RVC synthesizer and checkpoint reader against the real format and RVC's own code.

The reference (rvc-python's ``lib/infer_pack``, loaded by file path) is optional: tests that need it skip when it
is absent. Everything else runs on random checkpoints written exactly as RVC saves them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from singer.engines.converters.rvc import checkpoint as ck
from singer.engines.converters.rvc.testing import UPSAMPLING, random_checkpoint, write_checkpoint
from singer.errors import InputError, ModelError
from tests import rvc_reference

VARIANTS = [(v, sr, f0) for (v, sr) in UPSAMPLING for f0 in (True, False)]


def _inputs(version: str, t: int = 120, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    phone = torch.randn(1, t, 768 if version == "v2" else 256, generator=g)
    pitchf = 110 + 220 * torch.rand(1, t, generator=g)
    pitchf[:, 60:90] = 0  # an unvoiced stretch
    pitch = torch.randint(1, 256, (1, t), generator=g)
    return phone, pitch, pitchf


@pytest.mark.parametrize("version,sr,f0", VARIANTS)
def test_loads_every_variant_and_renders_hop_per_frame(version, sr, f0, tmp_path):
    path = write_checkpoint(tmp_path / "m.pth", version=version, sr=sr, f0=f0, size="tiny", seed=2)
    model = ck.load(path)
    assert (model.version, model.sr, model.f0) == (version, sr, f0)
    net = model.build()
    phone, pitch, pitchf = _inputs(version, 50)
    with torch.inference_mode():
        y = net.infer(phone, pitch, pitchf, 0, generator=torch.Generator().manual_seed(0))
    assert y.shape == (1, 1, 50 * sr // 100)
    assert torch.isfinite(y).all() and y.abs().max() > 0


@pytest.mark.parametrize("version,sr,f0", VARIANTS)
def test_equals_rvc_reference(version, sr, f0):
    if rvc_reference.infer_pack() is None:
        pytest.skip("rvc-python (reference) not installed")
    cpt = random_checkpoint(version, sr, f0=f0, size="tiny", seed=3)
    ref = rvc_reference.reference_synthesizer(cpt)
    mine = ck.from_dict(cpt).build()
    phone, pitch, pitchf = _inputs(version)
    t = phone.shape[1]
    with torch.no_grad():
        torch.manual_seed(11)
        args = (
            (phone, torch.tensor([t]), pitch, pitchf, torch.tensor([1]))
            if f0
            else (phone, torch.tensor([t]), torch.tensor([1]))
        )
        a = ref.infer(*args)[0]
        b = mine.infer(phone, pitch, pitchf, 1, generator=torch.Generator().manual_seed(11))
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
    # rendering only the kept middle (as the pipeline does) gives the same samples
    cut = sr // 4
    with torch.no_grad():
        c = mine.infer(phone, pitch, pitchf, 1, generator=torch.Generator().manual_seed(11), keep=(cut, cut))
    assert torch.allclose(a[..., cut:-cut], c, atol=1e-5, rtol=0)


def test_full_size_v2_40k_has_community_parameter_count(tmp_path):
    cpt = random_checkpoint("v2", 40000, f0=True, size="full", seed=0, speakers=109)
    model = ck.from_dict(cpt)
    assert model.describe()["parameters"] == pytest.approx(27.5e6, rel=0.01)  # 55 MB in float16, as shared v2 40k files
    assert any(k.endswith("weight_g") for k in cpt["weight"])  # stored with weight norm, as RVC saves
    assert all(v.dtype == torch.float16 for v in cpt["weight"].values())


def test_parametrized_weight_norm_layout_loads(tmp_path):
    cpt = random_checkpoint("v2", 40000, f0=True, seed=4)
    renamed = {}
    for k, v in cpt["weight"].items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        )
        renamed[k] = v
    a = ck.from_dict(cpt).weight
    b = ck.from_dict({**cpt, "weight": renamed}).weight
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_malicious_pth_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"weight": {"x": Evil()}, "config": []}, path)
    with pytest.raises(ModelError, match="Refused"):
        ck.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c.pop("weight"), "not an RVC voice model"),
        (lambda c: c.update(version="v1"), "says version v1"),
        (lambda c: c.update(f0=0), "says f0=0"),
        (lambda c: c["weight"].pop("dec.conv_post.weight"), "does not fit"),
        (lambda c: c.update(vocoder="RefineGAN"), "RefineGAN"),
    ],
)
def test_broken_checkpoints_name_the_problem(tmp_path, mutate, match):
    cpt = random_checkpoint("v2", 40000, f0=True, seed=5)
    mutate(cpt)
    path = tmp_path / "bad.pth"
    torch.save(cpt, path)
    with pytest.raises(ModelError, match=match):
        ck.load(path).build()


def test_training_checkpoint_is_explained(tmp_path):
    path = tmp_path / "G_2333.pth"
    torch.save({"model": {"a": torch.zeros(1)}, "iteration": 1}, path)
    with pytest.raises(ModelError, match="training checkpoint"):
        ck.load(path)


def test_merge_weights_parameters_and_refuses_mismatches():
    a = ck.from_dict(random_checkpoint("v2", 40000, f0=True, seed=1, speakers=4))
    b = ck.from_dict(random_checkpoint("v2", 40000, f0=True, seed=2, speakers=2))
    m = ck.merge([a, b], [3, 1], ["a", "b"])
    k = "dec.conv_post.weight"
    assert torch.allclose(m.weight[k], 0.75 * a.weight[k] + 0.25 * b.weight[k], atol=1e-6)
    assert m.weight["emb_g.weight"].shape[0] == 2 and m.config[-3] == 2
    m.build()  # loads strictly into the architecture
    for other, what in [
        (random_checkpoint("v1", 40000, seed=3), "version"),
        (random_checkpoint("v2", 48000, seed=3), "sample rate"),
        (random_checkpoint("v2", 40000, f0=False, seed=3), "f0"),
    ]:
        with pytest.raises(InputError, match=what):
            ck.merge([a, ck.from_dict(other)], [1, 1], ["a", "x"])
    full = ck.from_dict(random_checkpoint("v2", 40000, seed=3, size="full"))
    with pytest.raises(InputError, match="layer"):
        ck.merge([a, full], [1, 1], ["a", "big"])


def test_merge_round_trips_through_save(tmp_path):
    a = ck.from_dict(random_checkpoint("v1", 48000, f0=True, seed=1))
    b = ck.from_dict(random_checkpoint("v1", 48000, f0=True, seed=2))
    m = ck.merge([a, b, a], [1, 1, 2], ["a", "b", "a2"])
    m.save(tmp_path / "m.pth")
    back = ck.load(tmp_path / "m.pth")
    assert back.version == "v1" and back.sr == 48000 and "merge of" in back.info
    np.testing.assert_allclose(
        back.weight["dec.conv_pre.weight"].numpy(), m.weight["dec.conv_pre.weight"].numpy(), atol=2e-3
    )


def test_a_config_asking_for_absurd_sizes_is_refused_before_anything_is_built():
    """A .pth whose config describes a network far larger than its weights: refused when read, without allocating
    the network (it is built on torch's meta device, after its numbers are bounded)."""
    raw = random_checkpoint("v2", 40000, size="tiny")
    huge = {**raw, "config": [*raw["config"][:3], 10**9, *raw["config"][4:]]}
    with pytest.raises(ModelError, match="config no RVC model has"):
        ck.from_dict(huge)
    wider = {**raw, "config": [*raw["config"][:3], raw["config"][3] * 2, *raw["config"][4:]]}  # valid, wrong
    with pytest.raises(ModelError, match="does not fit"):
        ck.from_dict(wider)
    assert ck.from_dict(raw).version == "v2"
