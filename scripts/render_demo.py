#!/usr/bin/env python3
"""Re-render the bundled demo song, singer/data/demo/demo_song.mp3, from the shipped score (score.json).

The melody is sung by Festival's singing mode (diphone voice kal_diphone) and the backing is rendered by FluidSynth
with the FluidR3 GM soundfont, through benchmarks/songgen.py (form "demo", seed 0). Needs the Debian packages
fluidsynth fluid-soundfont-gm festival festvox-kallpc16k; `make demo` does NOT need them: the rendered file is
committed. Deterministic: the same packages give the same audio.

    python scripts/render_demo.py [--out singer/data/demo]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "singer" / "data" / "demo")
    args = ap.parse_args()

    import songgen

    from singer.audio import encode
    from singer.loudness import file_loudness

    with tempfile.TemporaryDirectory() as tmp:
        song = songgen.make_song(tmp, seconds=None, seed=0, form="demo", write_extras=False)
        dst = encode(song["mix"], args.out / "demo_song.mp3", "mp3",
                     tags={"title": "A Quiet Tune", "artist": "the singer project", "copyright": "CC0-1.0"})
        meta = song["meta"]
        info = {
            "title": meta.get("title"), "file": dst.name, "seconds": meta.get("seconds"), "key": meta.get("key"),
            "tempo": meta.get("tempo"), "festival_voice": meta.get("voice"),
            "lufs": {n: round(file_loudness(song[n]), 2) for n in ("mix", "vocals", "instrumental")},
            "rendered_by": "scripts/render_demo.py (benchmarks/songgen.py form=demo seed=0)",
        }
    (args.out / "demo_song.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
