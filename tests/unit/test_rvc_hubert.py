"""Content features: transformers folder and fairseq checkpoint give the same, and what transformers gives."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from singer.engines.converters.rvc import hubert
from singer.engines.converters.rvc.hubert import ContentEncoder, find_content_model
from singer.errors import ModelError, UsageError
from tests import rvckit


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubert")
    return {
        "hf": rvckit.make_hf_hubert(root / "hf"),
        "pt": rvckit.make_fairseq_hubert(root / "hubert_base.pt"),
        "root": root,
    }


def _wav(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _fairseq_frames(n: int) -> int:
    for k, s in zip(rvckit.KERNELS, rvckit.STRIDES):
        n = (n - k) // s + 1
    return n


def test_hf_and_fairseq_give_identical_features(tiny):
    a, b = ContentEncoder.load(tiny["hf"]), ContentEncoder.load(tiny["pt"])
    assert (a.dim, a.has_final_proj, a.proj_dim) == (b.dim, b.has_final_proj, b.proj_dim) == (32, True, 16)
    for n in (16000, 16000 * 2 + 123, 4321):
        wav = _wav(n)
        v1a, v1b = a.features(wav, "v1"), b.features(wav, "v1")
        v2a, v2b = a.features(wav, "v2"), b.features(torch.from_numpy(wav), "v2")
        frames = _fairseq_frames(n)
        assert frames == (n - 80) // 320  # hubert: 400-sample window, 320 hop
        assert v1a.shape == (1, frames, 16) and v2a.shape == (1, frames, 32)
        assert torch.equal(v1a, v1b) and torch.equal(v2a, v2b)
        assert torch.isfinite(v2a).all() and v2a.std() > 0.1


def test_features_match_transformers_hidden_states(tmp_path):
    """12 layers: v1 = hidden_states[9] through final_proj, v2 = hidden_states[12]."""
    _, HubertModel = hubert._transformers()
    folder = rvckit.make_hf_hubert(tmp_path / "h12", layers=12, seed=3)
    enc = ContentEncoder.load(folder)
    ref = HubertModel.from_pretrained(folder).eval()
    wav = _wav(16000 + 777, seed=1)
    with torch.inference_mode():
        hs = ref(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states
        proj = enc.final_proj(hs[9])
    assert len(hs) == 13
    torch.testing.assert_close(enc.features(wav, "v2"), hs[12], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(enc.features(wav, "v1"), proj, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(enc.layer_output(wav, 9), hs[12], atol=1e-2)


def test_loads_a_save_pretrained_folder(tmp_path):
    """A folder written by transformers itself (weight-norm parametrization names, no final_proj)."""
    HubertConfig, HubertModel = hubert._transformers()
    config, _ = rvckit.tiny_weights()
    torch.manual_seed(0)
    model = HubertModel(HubertConfig(**config)).eval()
    model.save_pretrained(tmp_path / "saved")
    enc = ContentEncoder.load(tmp_path / "saved")
    wav = _wav(7000)
    with torch.inference_mode():
        want = model(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[3]
    assert not enc.has_final_proj
    torch.testing.assert_close(enc.features(wav, "v2"), want, rtol=1e-5, atol=1e-5)


def test_short_models_clamp_the_layer(tiny):
    enc = ContentEncoder.load(tiny["hf"])  # 3 layers
    wav = _wav(8000)
    assert torch.equal(enc.layer_output(wav, 12), enc.layer_output(wav, 3))
    assert torch.equal(enc.features(wav, "v1"), enc.final_proj(enc.layer_output(wav, 9)))


def test_fairseq_args_namespace_only_and_shape_inference(tmp_path, tiny):
    want = ContentEncoder.load(tiny["hf"]).features(_wav(9000), "v2")
    args_only = rvckit.make_fairseq_hubert(tmp_path / "args.pt", with_cfg=False, with_args=True)
    assert torch.equal(ContentEncoder.load(args_only).features(_wav(9000), "v2"), want)
    # no readable config: sizes from tensor shapes, heads = hidden // 64, hubert strides
    bare_pt = rvckit.make_fairseq_hubert(
        tmp_path / "bare.pt", with_cfg=False, with_args=False, hidden=64, heads=1, seed=5
    )
    bare_hf = rvckit.make_hf_hubert(tmp_path / "bare_hf", hidden=64, heads=1, seed=5)
    torch.testing.assert_close(
        ContentEncoder.load(bare_pt).features(_wav(9000), "v1"),
        ContentEncoder.load(bare_hf).features(_wav(9000), "v1"),
        rtol=0,
        atol=0,
    )


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_checkpoint_is_refused(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    bad = tmp_path / "hubert_base.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "cfg": _Evil()}, bad)
    with pytest.raises(ModelError) as e:
        ContentEncoder.load(bad)
    assert "Refused" in e.value.user_message and not _Evil.marker.exists()


def test_v1_needs_final_proj(tmp_path):
    enc = ContentEncoder.load(rvckit.make_hf_hubert(tmp_path / "noproj", with_final_proj=False))
    assert not enc.has_final_proj and enc.proj_dim is None
    assert enc.features(_wav(4000), "v2").shape[-1] == 32
    with pytest.raises(ModelError, match="final_proj"):
        enc.features(_wav(4000), "v1")


def test_bad_inputs(tiny):
    enc = ContentEncoder.load(tiny["hf"])
    with pytest.raises(UsageError):
        enc.features(_wav(4000), "v3")
    with pytest.raises(UsageError):
        enc.features(_wav(399), "v2")
    with pytest.raises(UsageError):
        enc.features(np.zeros((4000, 2), np.float32), "v2")


def test_find_content_model(tmp_path, tiny):
    with pytest.raises(ModelError) as e:
        find_content_model(tmp_path)
    assert "singer models pull hubert" in e.value.hint
    with pytest.raises(ModelError) as e:
        ContentEncoder.load(tmp_path / "hubert")
    assert "singer models pull hubert" in e.value.hint
    (tmp_path / "contentvec_768.pt").write_bytes(b"x")
    assert find_content_model(tmp_path) == tmp_path / "contentvec_768.pt"
    (tmp_path / "hubert_base.pt").write_bytes(b"x")
    assert find_content_model(tmp_path) == tmp_path / "hubert_base.pt"
    rvckit.make_hf_hubert(tmp_path / "hubert")
    assert find_content_model(tmp_path) == tmp_path / "hubert"


def test_damaged_files_are_model_errors(tmp_path):
    junk = tmp_path / "hubert_base.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        ContentEncoder.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": {"weight": torch.zeros(3)}, "cfg": None}, other)
    with pytest.raises(ModelError, match="not a HuBERT"):
        ContentEncoder.load(other)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError):
        ContentEncoder.load(folder)


def test_models_stay_warm_until_the_file_changes(tmp_path):
    pt = rvckit.make_fairseq_hubert(tmp_path / "hubert_base.pt")
    a = ContentEncoder.load(pt)
    assert ContentEncoder.load(pt) is a
    st = pt.stat()
    os.utime(pt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ContentEncoder.load(pt) is not a


def test_fairseq_shim_drives_like_rvc(tiny):
    enc = ContentEncoder.load(tiny["hf"])
    shim = rvckit.FairseqShim(enc)
    wav = torch.from_numpy(_wav(12000))
    logits = shim.extract_features(
        source=wav.view(1, -1), padding_mask=torch.zeros(1, 12000, dtype=torch.bool), output_layer=9
    )
    with torch.no_grad():
        assert torch.equal(shim.final_proj(logits[0]), enc.features(wav, "v1"))


def test_import_is_light_and_survives_a_broken_torchaudio(tmp_path):
    """Importing the modules loads no torch; a torchaudio that fails to load (built for another torch) is hidden
    from transformers even after transformers has already seen it as installed."""
    broken = tmp_path / "site" / "torchaudio"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise OSError('libc10_cuda.so: cannot open shared object file')\n")
    code = (
        "import sys, singer.engines.converters.rvc.hubert, singer.engines.converters.rvc.index\n"
        "assert not [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "from transformers.utils import import_utils\n"
        "assert import_utils.is_torchaudio_available()\n"
        "print(singer.engines.converters.rvc.hubert._transformers()[1].__name__)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), root])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("HubertModel")
