"""Voices from the wild (issue 15): RVC voices added from a loopback "file host" (plain files, zips of the shapes
found in the wild, a Hugging Face lookalike with its API file list, a transfer that breaks halfway), from local
zips and from other tools' folders; every good one converts a voice note, every bad one is refused with a clear
message and leaves nothing behind. Tiny random models in the real formats; nothing leaves this machine.

Folder layouts, as read in docs/voices-from-the-wild.md section 3: RVC WebUI (``webui.py``, ``train/train.py``,
``train/train_index.py``, ``docs/en/faq_en.md`` Q4), Applio (``rvc/train/train.py``,
``rvc/train/process/extract_index.py``), ultimate-rvc (``src/ultimate_rvc/common.py``, ``core/train/train.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from singer.api import CoverRequest, Singer
from singer.errors import InputError, ModelError, NetworkUnavailable, SourceError, UsageError
from singer.voicesources import resolve_link
from tests import media
from tests.rvcvoice import install_content_model, write_voice_files
from tests.voicehost import VoiceHost, make_zip

pytestmark = pytest.mark.timeout(300)
ADDED = "added_IVF37_Flat_nprobe_1_{}_v2.index"
TRAINED = "trained_IVF37_Flat_nprobe_1_{}_v2.index"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One tiny v2 voice (.pth + .index) and the zips and folders built from it."""
    d = tmp_path_factory.mktemp("wild")
    pth, index = write_voice_files(d / "src", "ayana", seed=1)
    junk = b"not a model"
    webui = make_zip(  # the 2023 RVC WebUI share: weights/ + logs/<name>/, with training leftovers and Mac junk
        d / "ayana_webui.zip",
        {
            "ayana/weights/ayana.pth": pth,
            f"ayana/logs/ayana/{ADDED.format('ayana')}": index,
            f"ayana/logs/ayana/{TRAINED.format('ayana')}": b"IVF quantiser",
            "ayana/logs/ayana/G_2333333.pth": junk,
            "ayana/logs/ayana/D_2333333.pth": junk,
            "__MACOSX/ayana/._ayana.pth": junk,
            "ayana/README.txt": b"Ayana, a bright anime voice. Trained 300 epochs.",
            "ayana/LICENSE.txt": b"CC-BY-4.0, credit the author",
        },
    )
    flat = make_zip(d / "flat.zip", {"model.pth": pth, "model.index": index})
    training_only = make_zip(d / "training.zip", {"logs/x/G_1000.pth": junk, "logs/x/D_1000.pth": junk})
    slip = make_zip(d / "slip.zip", {"../evil.pth": pth, "ok.index": index})
    bomb = make_zip(d / "bomb.zip", {"voice.pth": b"\0" * (300 * 1024**2)})
    return {
        "pth": pth,
        "index": index,
        "webui": webui,
        "flat": flat,
        "training": training_only,
        "slip": slip,
        "bomb": bomb,
        "dir": d,
    }


@pytest.fixture
def host(files, monkeypatch):
    with VoiceHost() as h:
        monkeypatch.setenv("HF_ENDPOINT", h.base)
        yield h


@pytest.fixture
def singer(settings, host):
    install_content_model(settings)
    cfg = settings.model_copy(update={"url_allow": f"127.0.0.1:{host.port}", "network_timeout": 5.0})
    return Singer(cfg)


def left_in_store(singer) -> list[str]:
    root = singer.settings.voices_path
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def sings(singer, name, tmp_path) -> None:
    """The voice converts a 2-second voice note."""
    note = media.voice_wav(tmp_path / f"{name}-note.wav", seconds=2.0)
    res = singer.convert(CoverRequest(input=str(note), voice=name, format="wav", out=str(tmp_path / f"{name}.wav")))
    assert res.output.is_file() and res.duration > 1.0


def test_links_from_the_wild_become_voices_that_sing(singer, host, files, tmp_path):
    host.files["/dl/x/ayana_webui.zip"] = files["webui"]
    host.files["/user/repo/resolve/main/b.pth"] = files["pth"]
    host.files["/user/repo/resolve/main/added_b.index"] = files["index"]
    host.add_repo(
        "user/one",
        {
            "voice/c_200e_4000s.pth": files["pth"],
            f"voice/{ADDED.format('c')}": files["index"],
            "voice/G_4000.pth": b"x",
            "README.md": b"hi",
        },
    )
    host.files["/big/x/d.pth"] = files["pth"]
    host.cut_after["/big/x/d.pth"] = 50_000  # breaks off once; the same add resumes it with a Range request

    a = singer.add_voice("ayana_a", f"{host.base}/dl/x/ayana_webui.zip", gender="female")
    assert a.meta["source"]["kind"] == "zip" and a.meta["licence"].startswith("CC-BY-4.0")
    assert a.meta["description"].startswith("Ayana, a bright") and len(a.meta["sha256"]) == 2
    assert any("G_2333333.pth" in n for n in a.meta["source"]["notes"])
    b = singer.add_voice(
        "ayana_b",
        f"{host.base}/user/repo/blob/main/b.pth",
        f"{host.base}/user/repo/blob/main/added_b.index",
        vocal_range="A3-E5",
        sha256=hashlib.sha256(files["pth"].read_bytes()).hexdigest(),
    )
    assert b.meta["source"]["download_url"].endswith("/resolve/main/b.pth") and "ayana_b.index" in b.meta["sha256"]
    c = singer.add_voice("c", f"{host.base}/user/one")  # a repo link: the API's file list names one voice
    assert c.meta["source"]["download_url"].endswith("voice/c_200e_4000s.pth") and "c.index" in c.meta["sha256"]
    d = singer.add_voice("d", f"{host.base}/big/x/d.pth")
    assert [r for p, r in host.requests if p == "/big/x/d.pth"] == [None, "bytes=50000-"]
    assert d.meta["version"] == "v2" and d.meta["sample_rate"] == 40000 and d.meta["f0"] is True
    assert left_in_store(singer) == sorted(
        f"{n}.{x}"
        for n in ("ayana_a", "ayana_b", "c", "d")
        for x in ("json", "pth", "index")
        if (n, x) != ("d", "index")
    )
    for name in ("ayana_a", "ayana_b", "c", "d"):
        assert singer.verify_voice(name)
        sings(singer, name, tmp_path)
    merged = singer.merge_voices(["ayana_a", "ayana_b"], [0.6, 0.4], "ayana-mix")
    sings(singer, merged.name, tmp_path)


def test_local_zip_and_tool_folders(singer, files, tmp_path):
    v = singer.add_voice("flat", files["flat"], vocal_range="A3-E5")
    assert v.meta["source"] == {"kind": "zip", "file": "flat.zip"} and "flat.index" in v.meta["sha256"]
    pth, index = files["pth"], files["index"]
    layouts = {  # (folder, files in it): RVC WebUI today, Applio's training folder, ultimate-rvc's voice folder
        "webui": {
            "assets/weights/yuu.pth": pth,
            "assets/weights/yuu_e100_s2000.pth": pth,
            f"logs/yuu/{ADDED.format('yuu')}": index,
            f"logs/yuu/{TRAINED.format('yuu')}": index,
            "logs/yuu/G_2333333.pth": b"x",
            "assets/pretrained_v2/f0G40k.pth": b"x",
        },
        "applio": {
            "yuu_200e_4000s.pth": pth,
            "yuu.index": index,
            "G_4000.pth": b"x",
            "D_4000.pth": b"x",
            "model_info.json": b"{}",
        },
        "urvc": {"weights.pth": pth, "weights.index": index},
    }
    for tool, entries in layouts.items():
        root = tmp_path / tool / "yuu"
        for rel, data in entries.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data.read_bytes() if isinstance(data, Path) else data)
        found = root / "logs" / "yuu" if tool == "applio" else root
        if tool == "applio":  # Applio keeps a voice's files in logs/<name>
            found.mkdir(parents=True)
            for f in list(root.iterdir()):
                if f.is_file():
                    f.rename(found / f.name)
        from tests.clirun import as_json, invoke

        name = "yuu" if tool == "webui" else f"yuu-{tool}"  # a WebUI folder holds many voices: name the one

        res = invoke("voices", "import", str(found if tool != "webui" else root), "--name", name, "--json")
        assert res.exit_code == 0, res.stdout
        voice = as_json(res)["voice"]
        assert f"{name}.index" in voice["sha256"] and voice["version"] == "v2", voice
    sings(singer, "yuu-applio", tmp_path)


@pytest.mark.parametrize(
    "case,error,needle",
    [
        ("redirect", SourceError, "loopback"),
        ("slip", InputError, "outside its folder"),
        ("bomb", InputError, "zip bomb"),
        ("training", InputError, "training checkpoints"),
        ("sha", ModelError, "not the"),
        ("cap", InputError, "at most"),
        ("missing", SourceError, "HTTP 404"),
        ("offline", NetworkUnavailable, "copy the file"),
        ("embedder", ModelError, "chinese-hubert-base"),
        ("garbage", ModelError, "not an RVC voice model"),
    ],
)
def test_bad_voices_are_refused_and_leave_nothing(singer, host, files, case, error, needle, tmp_path):
    url = f"{host.base}/f/x/{case}"
    if case == "redirect":  # to a loopback port the policy does not allow
        host.redirects["/f/x/redirect"] = "http://127.0.0.1:9/voice.pth"
    elif case in ("slip", "bomb", "training"):
        host.files[f"/f/x/{case}"] = files[case]
    elif case in ("sha", "cap"):
        host.files[f"/f/x/{case}"] = files["pth"]
    elif case == "offline":
        url = "http://127.0.0.1:9/voice.pth"
        singer.settings.url_allow += ",127.0.0.1:9"
    elif case == "embedder":
        ck = torch.load(files["pth"], weights_only=True)
        ck["embedder_model"] = "chinese-hubert-base"
        torch.save(ck, tmp_path / "e.pth")
        host.files["/f/x/embedder"] = tmp_path / "e.pth"
    elif case == "garbage":
        host.files["/f/x/garbage"] = b"<html>not here</html>"
    if case == "cap":
        singer.settings.max_voice_mb = 0.5
    with pytest.raises(error) as e:
        singer.add_voice("bad", url, sha256="0" * 64 if case == "sha" else None)
    assert needle in str(e.value), str(e.value)
    assert str(singer.settings.home) not in e.value.user_message + (e.value.hint or "")
    assert left_in_store(singer) == []


def test_links_are_rewritten_and_unsupported_hosts_said(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert resolve_link("https://pixeldrain.com/u/AbC123").url == "https://pixeldrain.com/api/file/AbC123"
    link = resolve_link("https://huggingface.co/u/r/blob/main/sub/x.pth")
    assert link.url == "https://huggingface.co/u/r/resolve/main/sub/x.pth" and not link.repo
    assert resolve_link("https://huggingface.co/u/r/tree/v2").repo == "u/r"
    assert resolve_link("https://huggingface.co/u/r").rev == "main"
    assert resolve_link("https://example.com/a.zip").url == "https://example.com/a.zip"
    for url in ("https://mega.nz/file/abc#key", "https://drive.google.com/file/d/x/view"):
        with pytest.raises(UsageError, match="in a browser"):
            resolve_link(url)


def test_a_failed_replacement_keeps_the_old_voice(settings, files, monkeypatch):
    """--overwrite whose index copy fails: the voice it was replacing keeps its files, and they still match."""
    import shutil

    from singer.voices import VoiceStore

    store = VoiceStore(settings)
    old = store.add_rvc("keep", files["pth"], files["index"], vocal_range="A3-E5")
    before = {p.name: p.read_bytes() for p in old.files}
    other_pth, other_index = write_voice_files(files["dir"] / "other", "other", seed=7)
    real_copy = shutil.copyfile

    def failing_copy(src, dst, *a, **kw):
        if str(src).endswith(".index"):
            raise OSError("disk full")
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        store.add_rvc("keep", other_pth, other_index, vocal_range="A3-E5", overwrite=True)
    monkeypatch.setattr(shutil, "copyfile", real_copy)
    kept = store.get("keep")
    assert {p.name: p.read_bytes() for p in kept.files} == before
    assert not [p.name for p in store.user_dir.iterdir() if p.name.endswith(".tmp")]
    assert all(r["ok"] for r in store.verify("keep").values())  # raises when a file no longer matches


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_pth_whose_records_inflate_is_refused_unread(settings, files, tmp_path):
    """torch's reader inflates a deflated record whole: a 0.4 MB .pth became 400 MB in memory (a 100 MB one, 100
    GB). torch never compresses what it saves, so a compressed record is refused before torch reads the file."""
    import zipfile

    from singer.voices import VoiceStore

    ck = torch.load(files["pth"], weights_only=True)
    ck["weight"]["pad"] = torch.zeros(75_000_000)  # 300 MB of zeros
    torch.save(ck, tmp_path / "big.pth")
    del ck
    with zipfile.ZipFile(tmp_path / "big.pth") as src, zipfile.ZipFile(tmp_path / "bomb.pth", "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)
    (tmp_path / "big.pth").unlink()
    assert (tmp_path / "bomb.pth").stat().st_size < 2e6
    before = _peak_rss_mb()
    with pytest.raises(ModelError, match="compressed") as e:
        VoiceStore(settings).add_rvc("bomb", tmp_path / "bomb.pth", vocal_range="A3-E5")
    assert "bomb.pth" in e.value.user_message and str(tmp_path) not in e.value.user_message
    assert _peak_rss_mb() - before < 150, "the records were inflated before the file was refused"


def test_an_index_that_declares_more_than_it_holds_is_refused_without_the_memory(settings, files, tmp_path):
    """A 200-byte faiss index declaring 1.5 GB of vectors made faiss allocate (and zero) all of it."""
    import struct

    import faiss
    import numpy as np

    from singer.voices import VoiceStore

    flat = faiss.IndexFlatL2(768)
    flat.add(np.zeros((1, 768), dtype=np.float32))
    raw = bytearray(faiss.serialize_index(flat).tobytes())
    at = raw.find(struct.pack("<Q", 768), 4)  # the count of stored floats, after the header
    raw[at : at + 8] = struct.pack("<Q", 384 * 1024**2)
    (tmp_path / "liar.index").write_bytes(bytes(raw[:200]))
    before = _peak_rss_mb()
    with pytest.raises(ModelError, match="liar.index") as e:
        VoiceStore(settings).add_rvc("liar", files["pth"], tmp_path / "liar.index", vocal_range="A3-E5")
    assert str(tmp_path) not in e.value.user_message
    assert _peak_rss_mb() - before < 500, "the index's declared sizes were allocated"
    assert not list(VoiceStore(settings).user_dir.glob("liar*"))


def test_a_failed_merge_leaves_nothing_and_keeps_the_voice_it_replaces(settings, files, monkeypatch):
    """An RVC merge wrote NAME.pth in place before its index was merged: a failure then left a stray model (a new
    name) or a replaced voice whose model no longer matched its manifest (--overwrite). Weights must be finite."""
    from singer.engines.converters.rvc import index as rvc_index
    from singer.voices import VoiceStore

    store = VoiceStore(settings)
    store.add_rvc("ma", files["pth"], files["index"], vocal_range="A3-E5")
    other_pth, other_index = write_voice_files(files["dir"] / "mb", "mb", seed=9)
    store.add_rvc("mb", other_pth, other_index, vocal_range="A3-E5")
    store.merge(["ma", "mb"], [0.5, 0.5], "mix")
    before = {p.name: p.read_bytes() for p in store.get("mix").files}

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(rvc_index, "merge_indexes", broken)
    with pytest.raises(OSError, match="disk full"):
        store.merge(["ma", "mb"], [0.9, 0.1], "mix", overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        store.merge(["ma", "mb"], [0.9, 0.1], "fresh")
    assert {p.name: p.read_bytes() for p in store.get("mix").files} == before
    assert all(r["ok"] for r in store.verify("mix").values())
    assert sorted(p.name for p in store.user_dir.iterdir() if "fresh" in p.name or p.name.startswith(".")) == []
    for bad in ([float("nan"), 1.0], [float("inf"), 1.0], [-1.0, 2.0]):
        with pytest.raises(InputError, match="weights"):
            store.merge(["ma", "mb"], bad, "nan")


def test_two_adds_of_one_name_do_not_mix(settings, files):
    """Two threads add voice "twin" from different models at once: one wins, the other is told it exists, and the
    voice's files are the winner's (its manifest's sha256 match the files on disk)."""
    import threading

    from singer.voices import VoiceStore

    other_pth, other_index = write_voice_files(files["dir"] / "twin2", "twin2", seed=9)
    sources = [(files["pth"], files["index"]), (other_pth, other_index)]
    outcomes: list = []

    def add(pth, index):
        try:
            outcomes.append(VoiceStore(settings).add_rvc("twin", pth, index, vocal_range="A3-E5"))
        except Exception as e:  # noqa: BLE001 - the loser's error is the assertion
            outcomes.append(e)

    threads = [threading.Thread(target=add, args=s) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(outcomes) == 2 and len(errors) == 1 and "already exists" in str(errors[0])
    assert all(r["ok"] for r in VoiceStore(settings).verify("twin").values())
