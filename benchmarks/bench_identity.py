#!/usr/bin/env python3
"""Does the converted vocal sound like the chosen voice? ``knn`` against ``world``, same run, held-out recordings.

    python benchmarks/bench_identity.py [--repeat 3] [--quick]

Prints ONE JSON object. Needs the test extras (resemblyzer: a speaker-embedding network whose weights ship in its
wheel; pocketsphinx 5: offline English recogniser) and the Debian packages the bundled voices came from
(asterisk-core-sounds-en-wav, asterisk-core-sounds-fr-wav, pocketsphinx-testdata).

* identity: resemblyzer's cosine similarity of the converted vocal to the target voice's held-out recordings
  (asterisk prompts other than vm-*, kenji's -0920: never in the voices) against its similarity to the source
  speaker's other recordings. Sources: held-out speech of the other bundled speakers, and sung vocals of generated
  songs (tests/synth.py) in a low and a high register (the singer's reference: another song by the same synth voice).
* content: pocketsphinx word error rate on English speech, unconverted vs converted, against the transcripts;
  per-note pitch error (cents, median) of the converted sung vocals against the written melody (with the shift the
  converter reports).
* speed: a 3-minute generated vocal, median of ``--repeat`` runs of each converter, with the load average; peak
  RSS of a 10-minute vocal's conversion in a fresh process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
JUNE = Path("/usr/share/asterisk/sounds/fr_CA_f_June")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
KENJI_HELD = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0920.wav"
SR = 44100
ENGINES = ("world", "knn")


def held_out(folder: Path) -> list[Path]:
    """The speaker's prompts that are not vm-* (the voices were built from vm-* only)."""
    return sorted(p for p in folder.glob("*.wav") if not p.name.startswith("vm-"))


def english_prompts(n: int) -> tuple[list[Path], str]:
    """``n`` held-out English prompts without digits, and their transcript."""
    text = {}
    for line in gzip.open("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "rt", errors="replace"):
        name, _, said = line.partition(":")
        if said and not re.search(r"\d", said):
            text[name.strip()] = said.strip()
    files = [p for p in held_out(ALLISON) if p.stem in text and len(text[p.stem].split()) >= 4][:n]
    return files, " ".join(text[p.stem] for p in files)


def words(s: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", s.lower()).split()


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d = d, np.empty_like(d)
        d[0] = i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return float(d[-1]) / max(len(r), 1)


def load(paths: list[Path], sr: int = SR, gap: float = 0.3) -> np.ndarray:
    from singer import audio

    pieces = []
    for p in paths:
        pieces += [audio.decode(p, sample_rate=sr, channels=1)[0], np.zeros(int(gap * sr), np.float32)]
    return np.concatenate(pieces)


class Judge:
    """Speaker embeddings (resemblyzer) and English recognition (pocketsphinx), both offline."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder
        from resemblyzer import VoiceEncoder

        self.enc = VoiceEncoder("cpu", verbose=False)
        self.asr = Decoder(samprate=16000, loglevel="FATAL")

    def embed(self, x: np.ndarray, sr: int = SR) -> np.ndarray:
        from resemblyzer import preprocess_wav

        from singer.audio import resample

        return self.enc.embed_utterance(preprocess_wav(resample(x[None], sr, 16000)[0], source_sr=16000))

    def transcribe(self, x: np.ndarray, sr: int = SR) -> str:
        from singer.audio import resample

        y = resample(x[None], sr, 16000)[0]
        pcm = (np.clip(y / max(np.abs(y).max(), 1e-9) * 0.7, -1, 1) * 32767).astype(np.int16).tobytes()
        self.asr.start_utt()
        self.asr.process_raw(pcm, full_utt=True)
        self.asr.end_utt()
        hyp = self.asr.hyp()
        return hyp.hypstr if hyp else ""


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def references(judge: Judge) -> tuple[dict, dict]:
    """Target references (held-out recordings of each voice) and source references (each source's other audio)."""
    from tests.synth import make_synthetic_song, transpose_to

    mika = judge.embed(load(held_out(ALLISON)[10:50]))
    hana = judge.embed(load(held_out(JUNE)[10:50]))
    target = {
        "mika": mika,
        "hana": hana,
        "kenji": judge.embed(load([KENJI_HELD])),
        "ayana": unit(0.6 * mika + 0.4 * hana),
    }
    kenji_other = sorted(p for p in LIBRIVOX.glob("*.wav") if p != KENJI_HELD)
    source = {"mika": mika, "hana": hana, "kenji": judge.embed(load(kenji_other))}
    for reg, midi in (("low", 50), ("high", 65)):
        _, voc, _ = make_synthetic_song(20.0, SR, seed=7, transpose=transpose_to(midi, 20.0, 7))
        source[f"sung-{reg}"] = judge.embed(voc.mean(axis=0))
    return target, source


def sources(tmp: Path) -> list[dict]:
    """The vocals to convert: held-out speech of each bundled speaker, and generated songs in two registers."""
    from tests.synth import make_synthetic_song, synthetic_melody, transpose_to

    files, text = english_prompts(10)
    out = [
        {"name": "mika", "x": load(files), "text": text, "targets": ["kenji", "hana"]},
        {"name": "hana", "x": load(held_out(JUNE)[:10]), "text": None, "targets": ["kenji", "mika"]},
        {"name": "kenji", "x": load([KENJI_HELD]), "targets": ["mika", "hana", "ayana"],
         "text": (LIBRIVOX / "transcription").read_text().splitlines()[3].split("</s>")[0].replace("<s>", "")},
    ]  # fmt: skip
    for reg, midi in (("low", 50), ("high", 65)):
        tr = transpose_to(midi, 20.0, 3)
        _, voc, _ = make_synthetic_song(20.0, SR, seed=3, transpose=tr)
        notes = synthetic_melody(20.0, 3, tr)
        out.append({"name": f"sung-{reg}", "x": voc.mean(axis=0), "notes": notes, "targets": ["mika", "hana", "kenji", "ayana"]})  # fmt: skip
    for s in out:
        s["path"] = tmp / f"{s['name']}.wav"
        sf.write(s["path"], s["x"], SR, subtype="FLOAT")
    return out


def note_error_cents(y: np.ndarray, notes: list, semitones: float) -> float:
    """Median |cents| of the converted vocal's median pitch over the middle half of each note vs the written note."""
    from singer.engines.converters.world import vocoder

    f0, t = vocoder.track_f0(np.asarray(y, dtype=np.float64), SR)
    errs = []
    for start, end, hz in notes:
        a, b = start + 0.25 * (end - start), end - 0.25 * (end - start)
        seg = f0[(t >= a) & (t < b)]
        seg = seg[seg > 0]
        if len(seg) >= 3:
            errs.append(abs(1200 * np.log2(np.median(seg) / (hz * 2 ** (semitones / 12)))))
    return round(float(np.median(errs)), 1) if errs else float("nan")


def run_pairs(judge: Judge, convs: dict, store, srcs: list[dict], target: dict, source: dict, tmp: Path) -> list:
    rows = []
    for s in srcs:
        base_wer = wer(s["text"], judge.transcribe(s["x"])) if s.get("text") else None
        for tgt in s["targets"]:
            row = {"source": s["name"], "voice": tgt, "wer_unconverted": base_wer}
            for eng, conv in convs.items():
                dst = tmp / f"{s['name']}-{tgt}-{eng}.wav"
                meta = conv.convert(s["path"], dst, store.get(tgt), {"key": "auto"})
                y = sf.read(dst, dtype="float32")[0]
                e = judge.embed(y)
                r = {"to_voice": round(float(e @ target[tgt]), 3), "to_source": round(float(e @ source[s["name"]]), 3)}
                r["identity_ok"] = r["to_voice"] > r["to_source"]
                if s.get("text"):
                    r["wer"] = round(wer(s["text"], judge.transcribe(y)), 3)
                if s.get("notes"):
                    r["note_error_cents"] = note_error_cents(y, s["notes"], float(meta["key"]))
                row[eng] = r
            rows.append(row)
    return rows


def summary(rows: list) -> dict:
    out: dict = {}
    for eng in ENGINES:
        per_voice = {}
        for v in sorted({r["voice"] for r in rows}):
            mine = [r[eng] for r in rows if r["voice"] == v]
            per_voice[v] = {
                "pairs_ok": f"{sum(m['identity_ok'] for m in mine)}/{len(mine)}",
                "mean_margin": round(float(np.mean([m["to_voice"] - m["to_source"] for m in mine])), 3),
            }
        speech = [r for r in rows if r.get("wer_unconverted") is not None]
        sung = [r[eng]["note_error_cents"] for r in rows if "note_error_cents" in r[eng]]
        out[eng] = {
            "identity": per_voice,
            "identity_ok_every_voice": all(r[eng]["identity_ok"] for r in rows),
            "wer_rise_points": round(100 * float(np.mean([r[eng]["wer"] - r["wer_unconverted"] for r in speech])), 1),
            "sung_note_error_cents_median": round(float(np.median(sung)), 1),
        }
    return out


def speed(convs: dict, store, tmp: Path, repeat: int) -> dict:
    from tests.synth import make_synthetic_song

    _, voc, _ = make_synthetic_song(180.0, SR, seed=2)
    src = tmp / "vocal180.wav"
    sf.write(src, voc.T, SR, subtype="FLOAT")
    out: dict = {"loadavg_before": [round(v, 2) for v in os.getloadavg()]}
    for eng, conv in convs.items():
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            conv.convert(src, tmp / f"speed-{eng}.wav", store.get("ayana"), {"key": "auto"})
            times.append(time.perf_counter() - t)
        out[f"{eng}_3min_s"] = {"median": round(float(np.median(times)), 2), "runs": [round(t, 2) for t in times]}
    out["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    long = tmp / "vocal600.wav"
    with sf.SoundFile(str(long), "w", SR, 2, subtype="FLOAT") as f:
        for _ in range(3):
            f.write(voc.T)
        f.write(voc.T[: 60 * SR])
    for eng in convs:
        out[f"{eng}_10min_peak_rss_mb"] = peak_rss(eng, long, tmp / f"long-{eng}.wav")
    return out


def peak_rss(engine: str, src: Path, dst: Path) -> float:
    """Peak RSS (MB) of one conversion in a fresh process: VmHWM, which exec resets (ru_maxrss would carry this
    process's own peak, with the embedding model, into the child)."""
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from singer.config import Settings; from singer.engines import registry; from singer.voices import VoiceStore\n"
        "s = Settings(); c = registry.create('converter', sys.argv[2], s)\n"
        "c.convert(sys.argv[3], sys.argv[4], VoiceStore(s).get('ayana'), {'key': 'auto'})\n"
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    args = [str(REPO), engine, str(src), str(dst)]
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return round(float(res.stdout.strip().splitlines()[-1]), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="identity and content only (no speed or memory)")
    a = ap.parse_args(argv)
    from singer.config import Settings
    from singer.engines import registry
    from singer.voices import VoiceStore

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        settings = Settings(home=tmp / "home")
        store = VoiceStore(settings)
        convs = {e: registry.create("converter", e, settings) for e in ENGINES}
        judge = Judge()
        target, source = references(judge)
        rows = run_pairs(judge, convs, store, sources(tmp), target, source, tmp)
        result = {"summary": summary(rows), "pairs": rows}
        if not a.quick:
            result["speed"] = speed(convs, store, tmp, a.repeat)
    result["machine"] = {"cpus": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
