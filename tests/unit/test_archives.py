"""Voices from the wild: zips are unpacked only inside a fresh folder, within limits counted on the bytes really
written (a lying header is caught while streaming), and the voice's .pth and .index are picked out of the layouts
that RVC WebUI, Applio, ultimate-rvc and hand-made zips leave (see docs/voices-from-the-wild.md)."""

from __future__ import annotations

import random
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from singer.archives import Limits, VoiceFiles, extract_zip, pick_voice_files
from singer.errors import InputError

# -- building zips -------------------------------------------------------------------------------------------------


def make_zip(path: Path, entries: dict[str, bytes | None], method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``entries`` (name -> bytes; None makes a folder entry)."""
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in entries.items():
            if data is None:
                zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            else:
                zf.writestr(name, data)
    return path


def patch_entry(path: Path, index: int, **fields: int) -> None:
    """Rewrite fields of the ``index``-th entry in both its local header and the central directory, as a
    hand-crafted zip would: file_size, crc, flags, method, external_attr, offset (central only)."""
    raw = bytearray(path.read_bytes())
    central = [i for i in range(len(raw)) if raw[i : i + 4] == b"PK\x01\x02"][index]
    (local,) = struct.unpack_from("<I", raw, central + 42)
    at = {
        "flags": (8, 6, "H"),
        "method": (10, 8, "H"),
        "crc": (16, 14, "I"),
        "file_size": (24, 22, "I"),
        "external_attr": (38, None, "I"),
    }
    for name, value in fields.items():
        if name == "offset":
            struct.pack_into("<I", raw, central + 42, value)
            continue
        c, lo, fmt = at[name]
        struct.pack_into("<" + fmt, raw, central + c, value)
        if lo is not None:
            struct.pack_into("<" + fmt, raw, local + lo, value)
    path.write_bytes(bytes(raw))


def local_offset(path: Path, index: int) -> int:
    with zipfile.ZipFile(path) as zf:
        return zf.infolist()[index].header_offset


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "unpacked"
    d.mkdir()
    return d


def refused(zip_path: Path, dest: Path, match: str, **limits) -> InputError:
    """Extraction fails with an InputError that names the archive (and no server path), leaving nothing behind."""
    with pytest.raises(InputError, match=match) as e:
        extract_zip(zip_path, dest, limits=Limits(**limits))
    assert zip_path.name in e.value.user_message
    assert str(dest) not in str(e.value) and str(zip_path.parent) not in str(e.value)
    assert e.value.hint
    assert list(dest.iterdir()) == []
    assert not (dest.parent / "evil.txt").exists() and not (dest.parent.parent / "evil.txt").exists()
    return e.value


# -- extraction ----------------------------------------------------------------------------------------------------


def test_a_nested_zip_unpacks_into_a_fresh_folder(tmp_path, dest):
    pth, index = random.Random(1).randbytes(300_000), random.Random(2).randbytes(200_000)
    z = make_zip(
        tmp_path / "Ayana.zip",
        {"Ayana/": None, "Ayana/model/Ayana.pth": pth, "Ayana/added_IVF1_Flat_nprobe_1_Ayana_v2.index": index},
    )
    out = extract_zip(z, dest)
    assert out.parent == dest and out.is_dir()
    assert (out / "Ayana/model/Ayana.pth").read_bytes() == pth
    assert (out / "Ayana/added_IVF1_Flat_nprobe_1_Ayana_v2.index").read_bytes() == index


def test_big_entries_stream_through_in_chunks(tmp_path, dest):
    """Entries of several MB, deflated (one compressed read can inflate to more than one chunk) and stored."""
    rng = random.Random(3)
    mixed = b"".join(bytes(1000) + rng.randbytes(24) for _ in range(4000))  # ~4 MB, compresses ~30x
    plain = rng.randbytes(3_000_000)
    z = make_zip(tmp_path / "big.zip", {"a/mixed.bin": mixed, "b/plain.bin": plain})
    out = extract_zip(z, dest)
    assert (out / "a/mixed.bin").read_bytes() == mixed and (out / "b/plain.bin").read_bytes() == plain
    stored = make_zip(tmp_path / "stored.zip", {"plain.bin": plain, "empty.txt": b""}, method=zipfile.ZIP_STORED)
    out = extract_zip(stored, dest)
    assert (out / "plain.bin").read_bytes() == plain and (out / "empty.txt").read_bytes() == b""


def test_backslash_names_from_old_windows_tools_become_folders(tmp_path, dest):
    out = extract_zip(make_zip(tmp_path / "win.zip", {"Ayana\\Ayana.pth": b"x"}), dest)
    assert (out / "Ayana" / "Ayana.pth").read_bytes() == b"x"


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "C:\\evil.txt", "C:evil.txt", "..\\evil.txt", "\\\\srv\\x"],
)
def test_names_that_leave_the_folder_are_refused(tmp_path, dest, name):
    z = make_zip(tmp_path / "slip.zip", {"Ayana.pth": b"ok", name: b"pwned"})
    refused(z, dest, "outside its folder")


def test_a_symlink_entry_is_refused(tmp_path, dest):
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr("Ayana.pth", b"ok")
        info = zipfile.ZipInfo("Ayana.index")
        info.create_system = 3  # unix
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    refused(tmp_path / "link.zip", dest, "symbolic link")


def test_a_device_entry_is_refused(tmp_path, dest):
    z = make_zip(tmp_path / "dev.zip", {"Ayana.pth": b"ok", "null": b""})
    patch_entry(z, 1, external_attr=(stat.S_IFCHR | 0o666) << 16)
    refused(z, dest, "special file")


@pytest.mark.parametrize(
    "names",
    [("Ayana.pth", "AYANA.pth"), ("caf\u00e9.txt", "cafe\u0301.txt"), ("a", "a/b.txt"), ("x/a.txt", "X/A.txt/b")],
)
def test_names_that_collide_once_normalised_are_refused(tmp_path, dest, names):
    z = make_zip(tmp_path / "clash.zip", dict.fromkeys(names, b"data"))
    refused(z, dest, "would be one file|both a file and a folder")


def test_the_same_name_twice_is_refused(tmp_path, dest):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        with zipfile.ZipFile(tmp_path / "dup.zip", "w") as zf:
            zf.writestr("Ayana.pth", b"one")
            zf.writestr("Ayana.pth", b"two")
    refused(tmp_path / "dup.zip", dest, "would be one file")


def test_too_many_entries_are_refused(tmp_path, dest):
    z = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(5)})
    refused(z, dest, "5 entries; at most 4", max_entries=4)
    assert extract_zip(z, dest, limits=Limits(max_entries=5)).is_dir()


def test_a_total_over_the_cap_is_refused_from_the_headers(tmp_path, dest):
    rng = random.Random(4)
    z = make_zip(tmp_path / "large.zip", {f"part{i}.bin": rng.randbytes(400_000) for i in range(3)})
    refused(z, dest, "would unpack to 1 MB", max_total_bytes=1_000_000)


def test_an_honest_bomb_is_refused_from_the_headers(tmp_path, dest):
    z = make_zip(tmp_path / "bomb.zip", {"Ayana.pth": bytes(20_000_000)})
    refused(z, dest, "zip bomb")


def test_a_bomb_with_a_lying_header_is_caught_while_streaming(tmp_path, dest):
    """The header claims 1000 bytes (the declared ratio looks harmless); the data inflates to 20 MB."""
    z = make_zip(tmp_path / "liar.zip", {"Ayana.pth": bytes(20_000_000)})
    patch_entry(z, 0, file_size=1000)
    with zipfile.ZipFile(z) as zf:
        assert zf.infolist()[0].file_size == 1000
    refused(z, dest, "is a zip bomb")


def test_a_total_with_lying_headers_is_caught_while_streaming(tmp_path, dest):
    rng = random.Random(5)
    z = make_zip(tmp_path / "liar-total.zip", {"a.bin": rng.randbytes(1_500_000)})
    patch_entry(z, 0, file_size=10)  # the header says 10 bytes; the data does not compress, so no ratio trips
    refused(z, dest, "more than the 1 MB allowed", max_total_bytes=1_000_000)


def test_a_header_that_does_not_match_the_data_is_refused(tmp_path, dest):
    z = make_zip(tmp_path / "short.zip", {"info.txt": b"hello world"})
    patch_entry(z, 0, file_size=5)
    refused(z, dest, "does not match its own header")
    z = make_zip(tmp_path / "crc.zip", {"info.txt": b"hello world"})
    patch_entry(z, 0, crc=zlib.crc32(b"something else"))
    refused(z, dest, "does not match its own header")


def test_entries_that_share_their_data_are_refused(tmp_path, dest):
    """The overlapping-entries bomb: many central entries point at one compressed kernel."""
    z = make_zip(tmp_path / "overlap.zip", {"a.txt": b"kernel", "b.txt": b"other"})
    patch_entry(z, 1, offset=local_offset(z, 0))
    refused(z, dest, "share their data")


def test_damaged_data_is_refused(tmp_path, dest):
    z = make_zip(tmp_path / "damaged.zip", {"Ayana.pth": random.Random(6).randbytes(50_000)})
    raw = bytearray(z.read_bytes())
    start = 30 + len("Ayana.pth")
    raw[start : start + 2000] = bytes(2000)
    z.write_bytes(bytes(raw))
    refused(z, dest, "damaged|does not match")


def test_a_deflate_stream_that_never_ends_is_refused(tmp_path, dest):
    """The data is deflate without its final block: it runs into the next header without finishing."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    unfinished = c.compress(b"voice" * 1000) + c.flush(zlib.Z_SYNC_FLUSH)
    z = make_zip(tmp_path / "cut.zip", {"Ayana.pth": unfinished, "b.txt": b"b"}, method=zipfile.ZIP_STORED)
    patch_entry(z, 0, method=zipfile.ZIP_DEFLATED, file_size=5000, crc=zlib.crc32(b"voice" * 1000))
    refused(z, dest, "is damaged")


def test_a_broken_local_header_is_refused(tmp_path, dest):
    z = make_zip(tmp_path / "header.zip", {"a.txt": b"a", "Ayana.pth": b"v"})
    raw = bytearray(z.read_bytes())
    at = local_offset(z, 1)
    raw[at : at + 4] = b"XXXX"
    z.write_bytes(bytes(raw))
    refused(z, dest, "is damaged")


def test_a_name_too_long_to_store_is_refused(tmp_path, dest):
    refused(make_zip(tmp_path / "long.zip", {"a" * 300 + ".pth": b"v"}), dest, "cannot be stored")


def test_password_protected_and_unusual_methods_are_refused(tmp_path, dest):
    z = make_zip(tmp_path / "locked.zip", {"Ayana.pth": b"secret"})
    patch_entry(z, 0, flags=0x1)
    refused(z, dest, "password")
    z = make_zip(tmp_path / "bz.zip", {"Ayana.pth": b"data"}, method=zipfile.ZIP_BZIP2)
    refused(z, dest, "compression method")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path, dest):
    (tmp_path / "voice.zip").write_bytes(b"<html>not found</html>")
    refused(tmp_path / "voice.zip", dest, "not a zip archive")


def test_the_label_names_the_archive_instead_of_a_temporary_name(tmp_path, dest):
    z = make_zip(tmp_path / "dl-3f9a.part", {"../evil.txt": b"x"})
    with pytest.raises(InputError, match="'Ayana.zip'"):
        extract_zip(z, dest, label="Ayana.zip")


# -- picking the voice's files --------------------------------------------------------------------------------------


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def rel(folder: Path, p: Path | None) -> str | None:
    return None if p is None else p.relative_to(folder).as_posix()


def test_a_hand_made_zip_from_the_wild(tmp_path, dest):
    """Nested folder, macOS junk, readme and licence: what hand-made zips on Hugging Face look like."""
    z = make_zip(
        tmp_path / "Ayana (RVC v2).zip",
        {
            "Ayana/Ayana.pth": b"pth",
            "Ayana/added_IVF1024_Flat_nprobe_1_Ayana_v2.index": b"idx",
            "Ayana/README.txt": "Ayana, 300 epochs, trained on 20 min of clean vocals.\n",
            "Ayana/LICENSE": "CC BY-NC 4.0",
            "__MACOSX/Ayana/._Ayana.pth": b"\x00\x05\x16\x07",
            "Ayana/.DS_Store": b"\x00",
        },
    )
    out = extract_zip(z, dest)
    got = pick_voice_files(out, label=z.name)
    assert rel(out, got.pth) == "Ayana/Ayana.pth"
    assert rel(out, got.index) == "Ayana/added_IVF1024_Flat_nprobe_1_Ayana_v2.index"
    assert got.readme == "Ayana, 300 epochs, trained on 20 min of clean vocals." and got.licence == "CC BY-NC 4.0"
    assert got.notes == ()


def test_an_rvc_webui_folder(tmp_path):
    """Layout read in RVC-Project/Retrieval-based-Voice-Conversion-WebUI: docs/en/faq_en.md Q4 (share weights/<name>.pth
    and logs/<name>/added_*.index; the logs .pth are not for inference), train/process_ckpt.py (assets/weights/),
    train/train.py (G_/D_<step>.pth in logs/<name>, per-epoch <name>_e<E>_s<S>.pth), train/train_index.py
    (trained_IVF... and added_IVF..._<name>_v2.index)."""
    root = tree(
        tmp_path / "RVC",
        {
            "assets/weights/Ayana.pth": b"voice",
            "assets/weights/Ayana_e10_s200.pth": b"epoch",
            "assets/weights/Other.pth": b"other voice",
            "assets/pretrained_v2/f0G40k.pth": b"base",
            "assets/pretrained_v2/f0D40k.pth": b"base",
            "logs/Ayana/G_2333333.pth": b"train",
            "logs/Ayana/D_2333333.pth": b"train",
            "logs/Ayana/trained_IVF256_Flat_nprobe_1_Ayana_v2.index": b"quantiser",
            "logs/Ayana/added_IVF256_Flat_nprobe_1_Ayana_v2.index": b"index",
            "logs/Other/added_IVF99_Flat_nprobe_1_Other_v2.index": b"index",
            "README.md": "RVC's own readme",
        },
    )
    got = pick_voice_files(root, want="Ayana")
    assert rel(root, got.pth) == "assets/weights/Ayana.pth"
    assert rel(root, got.index) == "logs/Ayana/added_IVF256_Flat_nprobe_1_Ayana_v2.index"
    notes = " ".join(got.notes)
    assert "G_2333333.pth" in notes and "trained_IVF256" in notes and "f0G40k.pth" in notes
    with pytest.raises(InputError, match="3 voice models: assets/weights/Ayana.pth, .*Ayana_e10_s200.pth"):
        pick_voice_files(root)


def test_an_applio_folder(tmp_path):
    """Layout read in IAHispano/Applio: rvc/train/train.py (logs/<name>/<name>_<E>e_<S>s.pth, G_/D_<step>.pth),
    rvc/train/process/extract_index.py (logs/<name>/<name>.index), model_info.json beside them."""
    root = tree(
        tmp_path / "logs",
        {
            "Ayana/Ayana_300e_6000s.pth": b"voice",
            "Ayana/Ayana.index": b"index",
            "Ayana/G_6000.pth": b"train",
            "Ayana/D_6000.pth": b"train",
            "Ayana/model_info.json": "{}",
        },
    )
    got = pick_voice_files(root / "Ayana")
    assert got.pth.name == "Ayana_300e_6000s.pth" and got.index is not None and got.index.name == "Ayana.index"
    assert any("G_6000.pth" in n for n in got.notes)


def test_an_ultimate_rvc_folder(tmp_path):
    """Layout read in JackismyShephard/ultimate-rvc: src/ultimate_rvc/common.py (models/rvc/voice_models/<name>/),
    core/train/train.py (<name>_best.pth and <name>.index copied there), core/manage/models.py (flat folder)."""
    root = tree(tmp_path / "voice_models/Ayana", {"Ayana_best.pth": b"voice", "Ayana.index": b"index"})
    got = pick_voice_files(root)
    assert (got.pth.name, got.index and got.index.name) == ("Ayana_best.pth", "Ayana.index")


def test_only_training_checkpoints_says_which_file_to_use(tmp_path):
    root = tree(tmp_path / "ckpt", {"logs/Ayana/G_23333.pth": b"g", "logs/Ayana/D_23333.pth": b"d"})
    with pytest.raises(InputError, match="only training checkpoints .*G_23333.pth") as e:
        pick_voice_files(root, label="Ayana.zip")
    assert "weights/<name>.pth" in (e.value.hint or "") and "'Ayana.zip'" in e.value.user_message


def test_no_model_at_all(tmp_path):
    with pytest.raises(InputError, match="no voice model"):
        pick_voice_files(tree(tmp_path / "x", {"song.mp3": b"id3", "notes.txt": "hi"}))


def test_a_voice_named_like_a_checkpoint_prefix_is_still_a_voice(tmp_path):
    got = pick_voice_files(tree(tmp_path / "g", {"G_Eazy.pth": b"voice"}))
    assert got.pth.name == "G_Eazy.pth"


def test_the_added_index_wins_and_a_tie_is_an_error(tmp_path):
    root = tree(
        tmp_path / "v", {"Ayana.pth": b"v", "Ayana.index": b"i", "added_IVF5_Flat_nprobe_1_Ayana_v2.index": b"i"}
    )
    got = pick_voice_files(root)
    assert got.index is not None and got.index.name.startswith("added_")
    assert any("other indexes: Ayana.index" in n for n in got.notes)
    tree(root, {"added_IVF6_Flat_nprobe_1_Ayana_v1.index": b"i"})
    with pytest.raises(InputError, match="2 indexes that could go with Ayana.pth"):
        pick_voice_files(root)


def test_only_a_trained_index_means_no_index(tmp_path):
    got = pick_voice_files(tree(tmp_path / "v", {"Ayana.pth": b"v", "trained_IVF5_Flat_nprobe_1_Ayana_v2.index": b"q"}))
    assert got.index is None
    assert any("training index" in n for n in got.notes) and any("without one" in n for n in got.notes)


def test_a_lone_text_file_is_the_description_and_text_is_capped(tmp_path):
    got = pick_voice_files(tree(tmp_path / "v", {"Ayana.pth": b"v", "Model by Kit.txt": "x" * 40_000}))
    assert got.readme is not None and got.readme.endswith("[...]") and len(got.readme) < 17_000
    assert pick_voice_files(tree(tmp_path / "w", {"Ayana.pth": b"v", "README": b"\x00\x01bin"})).readme is None


def test_voice_files_is_a_plain_value(tmp_path):
    got = pick_voice_files(tree(tmp_path / "v", {"Ayana.pth": b"v"}))
    assert got == VoiceFiles(tmp_path / "v/Ayana.pth", None, None, None, got.notes)
