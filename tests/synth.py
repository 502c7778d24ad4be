"""Synthetic signals for tests (pure numpy, no external programs), in the spirit of pedalboard's tests/utils.py.

``make_synthetic_song(seconds, sr, seed) -> (mix, vocals, instrumental)``: float32 ``(2, n)`` arrays,
``n = int(seconds * sr)``, with ``mix == vocals + instrumental`` exactly. The song is a small pop arrangement:

* vocals: a sung melody (one syllable per note, phrases of two bars with breaths between them) by a harmonic
  "voice" -- harmonics shaped by vowel formants (plus a singer's formant) that change from syllable to syllable,
  pitch glides, vibrato, syllable amplitude envelopes, consonant noise bursts and a little breath noise, a little
  stereo ambience;
* instrumental: I-vi-IV-V chords on an electric-piano-like tone, a plucked bass line, drums made of noise and
  sine sweeps (kick, snare, hi-hat), panned.

The vocal is as loud as the backing where it sings; the mix peaks at about -3 dBFS. ``synthetic_melody`` gives the
sung notes (start, end, Hz) of the same song, for pitch tests. ``transpose`` (semitones) moves the whole song, and
``transpose_to(median_midi, seconds, seed)`` gives the transpose that puts the sung melody's median on a note, for
singers in a low (male) or high (female) register. ``spoken(seconds, sr, f0, seed)`` is speech-like audio around
a given speaking pitch. Everything is deterministic for a seed and fast (about 0.1 s per second of song). Spleeter's 2-stem model finds the voice (correlation of its vocal estimate with
the true stem 0.85-0.96 for seeds 1-3 at 6 s).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["generate_sine", "generate_noise", "make_synthetic_song", "synthetic_melody", "transpose_to", "spoken"]


def generate_sine(
    freq: float, sr: int = 44100, seconds: float = 1.0, channels: int = 1, amp: float = 0.5
) -> np.ndarray:
    """A sine tone, float32 (channels, int(sr * seconds))."""
    t = np.arange(int(sr * seconds)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[None], channels, axis=0).astype(np.float32)


def generate_noise(
    sr: int = 44100, seconds: float = 1.0, channels: int = 1, amp: float = 0.1, seed: int = 0
) -> np.ndarray:
    """White noise, float32 (channels, int(sr * seconds)), RMS ``amp``."""
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal((channels, int(sr * seconds)))).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# the plan: tempo, key, chords and melody

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_PROGRESSIONS = [(0, 9, 5, 7), (0, 5, 9, 7), (9, 5, 0, 7), (0, 7, 9, 5)]  # I-vi-IV-V and friends (root offsets)
_MINOR_ROOTS = {9, 2, 4}  # vi, ii, iii are minor in a major key
_RHYTHMS = [(1, 1, 1, 1), (1.5, 0.5, 1, 1), (0.5, 0.5, 1, 2), (2, 1, 1), (1, 0.5, 0.5, 2), (1, 1, 2)]
_VOWELS = {  # F1, F2, F3 (Hz) of a tenor-ish voice
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (300, 2200, 2950),
    "o": (570, 840, 2410),
    "u": (330, 870, 2240),
    "ae": (660, 1720, 2410),
}


def _plan(seconds: float, seed: int, transpose: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    tempo = float(rng.choice([92, 100, 108, 116]))
    beat = 60.0 / tempo
    tonic = int(rng.integers(48, 55)) + transpose  # C3..F#3: a male/low-female singing range above it
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    n_bars = int(np.ceil(seconds / (4 * beat))) + 1
    chords = []
    for b in range(n_bars):
        root = prog[b % 4]
        third = 3 if root in _MINOR_ROOTS else 4
        chords.append((b * 4 * beat, tonic + root, (0, third, 7)))
    scale = np.concatenate([tonic + _MAJOR + 12 * o for o in (0, 1)] + [[tonic + 24]])
    notes = []  # (start s, end s, midi, vowel, consonant)
    bar = 0
    prev = tonic + 4
    start_beat = 0.5 if rng.random() < 0.5 else 1.0  # a short instrumental pickup
    while bar < n_bars:
        for pb in range(2):  # phrase = 2 bars
            b = bar + pb
            if b >= n_bars:
                break
            _, root, quality = chords[b]
            chord_pcs = {(root + q) % 12 for q in quality}
            rhythm = _RHYTHMS[int(rng.integers(len(_RHYTHMS)))]
            pos = 0.0 if pb else start_beat
            beats = list(rhythm)
            if pb == 1:  # leave a breath at the end of the phrase
                beats[-1] = max(0.5, beats[-1] - 1.0)
            for dur in beats:
                if pos >= 4:
                    break
                dur = min(dur, 4 - pos)
                cands = [m for m in scale if abs(m - prev) <= 5] or list(scale)
                weights = np.array([3.0 if m % 12 in chord_pcs else 1.0 for m in cands])
                weights /= 1.0 + 0.3 * np.abs(np.array(cands) - prev)
                m = int(rng.choice(cands, p=weights / weights.sum()))
                t0 = (b * 4 + pos) * beat
                vowel = str(rng.choice(list(_VOWELS)))
                consonant = str(
                    rng.choice(["s", "t", "k", "n", "l", "h", ""], p=[0.15, 0.2, 0.1, 0.15, 0.15, 0.1, 0.15])
                )
                notes.append((t0, t0 + dur * beat, m, vowel, consonant))
                prev = m
                pos += dur
        bar += 2
        start_beat = 0.0 if rng.random() < 0.6 else 0.5
    notes = [nt for nt in notes if nt[0] < seconds - 0.1]
    return {"tempo": tempo, "beat": beat, "tonic": tonic, "chords": chords, "notes": notes, "n_bars": n_bars}


def synthetic_melody(seconds: float = 5.0, seed: int = 0, transpose: int = 0) -> list[tuple[float, float, float]]:
    """The sung notes of ``make_synthetic_song(seconds, seed=seed, transpose=transpose)``: (start s, end s, f0 Hz)."""
    return [
        (s, min(e, seconds), 440.0 * 2 ** ((m - 69) / 12))
        for s, e, m, _, _ in _plan(float(seconds), int(seed), int(transpose))["notes"]
    ]


def transpose_to(median_midi: float, seconds: float = 5.0, seed: int = 0) -> int:
    """The transpose (semitones) that puts the median of the song's sung melody (by time) nearest ``median_midi``."""
    notes = synthetic_melody(seconds, seed)
    midi = np.array([69 + 12 * np.log2(f / 440.0) for _, _, f in notes])
    dur = np.array([e - s for s, e, _ in notes])
    order = np.argsort(midi)
    median = midi[order][np.searchsorted(np.cumsum(dur[order]), dur.sum() / 2)]
    return int(round(median_midi - median))


# ----------------------------------------------------------------------------------------------------------------
# synthesis helpers


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz by FFT masking, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec *= 1.0 / (1 + ((f - (lo + hi) / 2) / ((hi - lo) / 2)) ** 8)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _add(buf: np.ndarray, start: int, x: np.ndarray) -> None:
    if start >= buf.shape[-1]:
        return
    start = max(start, 0)
    m = min(x.shape[-1], buf.shape[-1] - start)
    buf[..., start : start + m] += x[..., :m]


def _voice(plan: dict, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    hop = 128
    nfr = n // hop + 2
    tf = np.arange(nfr) * hop / sr
    notes = plan["notes"]
    if not notes:
        return np.zeros(n)
    starts = np.array([nt[0] for nt in notes])
    idx = np.clip(np.searchsorted(starts, tf, side="right") - 1, 0, len(notes) - 1)
    midi = np.array([nt[2] for nt in notes], float)[idx]
    k = max(3, int(0.04 * sr / hop))  # 40 ms glides
    midi = np.convolve(np.pad(midi, k, mode="edge"), np.hanning(2 * k + 1) / np.hanning(2 * k + 1).sum(), "same")[k:-k]
    # vibrato on long notes, slow drift, amplitude and vowel per frame
    vib = np.zeros(nfr)
    amp = np.zeros(nfr)
    cons = np.zeros(nfr)
    formants = np.zeros((nfr, 3))
    prev_vowel = np.array(_VOWELS[notes[0][3]], float)
    for j, (s, e, _, vowel, consonant) in enumerate(notes):
        in_note = (tf >= s) & (tf < e)
        d = e - s
        legato = j + 1 < len(notes) and notes[j + 1][0] - e < 1e-6
        rel = 0.05 if not legato else 0.03
        env = (
            np.clip((tf - s) / 0.03, 0, 1)
            * np.clip((e - tf) / rel, 0, 1)
            * (1 - 0.15 * np.clip((tf - s) / max(d, 1e-3), 0, 1))
        )
        if legato:
            env = np.maximum(env, 0.5 * in_note)  # syllables run into each other
        amp = np.maximum(amp, env * in_note)
        # vibrato from 50 ms into every note (separators such as Spleeter key on it: without it on short
        # notes the voice passes for an instrument)
        vib = np.maximum(vib, np.clip((tf - s - 0.05) / 0.1, 0, 1) * in_note)
        target = np.array(_VOWELS[vowel], float)
        w = np.clip((tf[in_note] - s) / 0.06, 0, 1)[:, None]  # vowel transition
        formants[in_note] = prev_vowel * (1 - w) + target * w
        prev_vowel = target
        if consonant in ("s", "t", "k", "h"):
            length = {"s": 0.07, "t": 0.02, "k": 0.03, "h": 0.05}[consonant]
            c = (tf >= s - length) & (tf < s + 0.005)
            cons[c] = {"s": 0.35, "t": 0.5, "k": 0.4, "h": 0.15}[consonant]
    formants[amp == 0] = prev_vowel
    rate = 5.2 + 0.6 * rng.random()
    midi = midi + 0.3 * vib * np.sin(2 * np.pi * rate * tf) + 0.04 * np.sin(2 * np.pi * 0.7 * tf + rng.uniform(0, 6))
    f0_fr = 440.0 * 2 ** ((midi - 69) / 12)

    ts = np.arange(n)
    fr_pos = ts / hop
    f0 = np.interp(fr_pos, np.arange(nfr), f0_fr)
    z1 = np.exp(1j * 2 * np.pi * np.cumsum(f0) / sr)
    zh = np.ones(n, complex)
    out = np.zeros(n)
    fmax = min(9000.0, sr / 2 - 500)
    gains = np.array([1.0, 0.6, 0.35])
    bws = np.array([90.0, 110.0, 160.0])
    for h in range(1, int(fmax / f0_fr.min()) + 1):
        zh *= z1
        fh = h * f0_fr
        envf = (gains[None] * np.exp(-0.5 * ((fh[:, None] - formants) / (bws + 0.06 * formants)) ** 2)).sum(1)
        envf += 0.3 * np.exp(-0.5 * ((fh - 2900) / 250) ** 2)  # singer's formant
        a_fr = (envf + 0.01 / h) * (fh < fmax)
        if not a_fr.any():
            break
        out += np.interp(fr_pos, np.arange(nfr), a_fr) * zh.imag
    env_s = np.interp(fr_pos, np.arange(nfr), amp)
    voice = out * env_s
    voice /= np.sqrt(np.mean(voice[env_s > 0.3] ** 2)) + 1e-12 if np.any(env_s > 0.3) else 1.0
    breath = _band_noise(rng, n, sr, 1500, 8000) * 0.015 * env_s
    hiss = _band_noise(rng, n, sr, 3500, 11000) * np.interp(fr_pos, np.arange(nfr), cons)
    return voice + breath + hiss


def _instrumental(plan: dict, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    beat = plan["beat"]
    out = np.zeros((2, n))
    # electric-piano-ish chords on beats 1 and 3 (and the "and" of 2 now and then)
    for t0, root, quality in plan["chords"]:
        voicing = [55 + (root + q - 55) % 12 for q in quality]
        hits = [0.0, 2.0] + ([1.5] if rng.random() < 0.4 else [])
        for hb in hits:
            dur = 2.0 * beat
            tt = np.arange(int(dur * sr)) / sr
            x = np.zeros_like(tt)
            for m in voicing:
                f = 440.0 * 2 ** ((m - 69) / 12)
                x += np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.9) + 0.35 * np.sin(4 * np.pi * f * tt) * np.exp(
                    -tt / 0.25
                )
                x += 0.1 * np.sin(6 * np.pi * f * tt) * np.exp(-tt / 0.1)
            x *= np.clip(tt / 0.004, 0, 1) * np.clip((dur - tt) / 0.05, 0, 1) * 0.14
            _add(out, int((t0 + hb * beat) * sr), np.stack([0.62 * x, 0.38 * x]))
        # bass: eighth notes on the root, an octave jump on the last one
        for e in range(8):
            m = 36 + (root - 36) % 12 + (12 if e == 7 else 0)
            f = 440.0 * 2 ** ((m - 69) / 12)
            dur = 0.5 * beat * 0.9
            tt = np.arange(int(dur * sr)) / sr
            x = sum(np.sin(2 * np.pi * h * f * tt) / h * np.exp(-tt * (3 + 4 * h)) for h in range(1, 7))
            x *= np.clip(tt / 0.003, 0, 1) * np.clip((dur - tt) / 0.02, 0, 1) * (0.32 if e % 2 == 0 else 0.24)
            _add(out, int((t0 + e * 0.5 * beat) * sr), np.stack([x, x]))
    # drums
    n_beats = int(plan["n_bars"] * 4)
    kick_len, snare_len, hat_len = int(0.25 * sr), int(0.2 * sr), int(0.06 * sr)
    tk = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-tk / 0.03)) / sr) * np.exp(-tk / 0.12) * 0.55
    ts_ = np.arange(snare_len) / sr
    snare_noise = _band_noise(rng, snare_len, sr, 1500, 9000)
    snare = 0.22 * snare_noise * np.exp(-ts_ / 0.06) + 0.25 * np.sin(2 * np.pi * 185 * ts_) * np.exp(-ts_ / 0.04)
    th = np.arange(hat_len) / sr
    for b in range(n_beats):
        t0 = int(b * beat * sr)
        if b % 4 in (0, 2) or (b % 4 == 1 and rng.random() < 0.3):
            off = int(0.5 * beat * sr) if b % 4 == 1 else 0
            _add(out, t0 + off, np.stack([kick, kick]))
        if b % 4 in (1, 3):
            _add(out, t0, np.stack([snare * 0.95, snare]))
        for half in (0, 1):
            hat = _band_noise(rng, hat_len, sr, 7000, 15000) * np.exp(-th / (0.012 if half else 0.02))
            hat *= 0.05 if half else 0.07
            _add(out, t0 + half * int(0.5 * beat * sr), np.stack([0.45 * hat, 0.75 * hat]))
    return out


@lru_cache(maxsize=8)
def _song(seconds: float, sr: int, seed: int, transpose: int = 0):
    rng = np.random.default_rng(seed + 1)
    plan = _plan(seconds, seed, transpose)
    n = int(seconds * sr)
    voice = _voice(plan, n, sr, rng)
    inst = _instrumental(plan, n, sr, rng)
    # a touch of stereo ambience on the voice: a few quiet early reflections per side
    vocals = np.stack([voice, voice])
    for c in range(2):
        for _ in range(4):
            d = int(rng.uniform(0.008, 0.045) * sr)
            if d < n:
                vocals[c, d:] += rng.uniform(0.06, 0.14) * voice[:-d]
    # balance: vocals as loud as the backing where they sing; then the mix peaks at -3 dBFS
    sung = np.abs(voice) > 0
    active = np.convolve(sung.astype(float), np.ones(2048) / 2048, "same") > 0.5
    if active.any():
        rv = np.sqrt(np.mean(vocals[:, active] ** 2))
        ri = np.sqrt(np.mean(inst[:, active] ** 2))
        vocals *= ri / (rv + 1e-12)
    # short fades so the song starts and ends cleanly
    fade = np.ones(n)
    k = min(n // 4, int(0.01 * sr))
    if k:
        fade[:k] = np.linspace(0, 1, k)
        fade[-k:] = np.linspace(1, 0, k)
    vocals *= fade
    inst *= fade
    peak = np.max(np.abs(vocals + inst)) if n else 1.0
    g = 10 ** (-3 / 20) / (peak + 1e-12)
    vocals = (vocals * g).astype(np.float32)
    instrumental = (inst * g).astype(np.float32)
    return vocals + instrumental, vocals, instrumental


def make_synthetic_song(seconds: float = 5.0, sr: int = 44100, seed: int = 0, transpose: int = 0):
    """(mix, vocals, instrumental): float32 (2, int(seconds*sr)), mix == vocals + instrumental sample for sample.
    ``transpose``: semitones the whole song (melody and chords) is moved by."""
    mix, vocals, inst = _song(float(seconds), int(sr), int(seed), int(transpose))
    return mix.copy(), vocals.copy(), inst.copy()


_SPEECH_VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (300, 2200, 2950), (570, 840, 2410), (330, 870, 2240))


def spoken(seconds: float = 3.0, sr: int = 44100, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """Speech-like mono float32 audio around the speaking pitch ``f0`` (Hz): syllables of 120-300 ms through vowel
    formants, each gliding (a rise or a fall of 1-4 semitones), phrases that fall by 2 semitones, short gaps and
    pauses, noise consonants. The median pitch is ``f0`` within a semitone or so."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    t = 0.05
    phrase_start = t
    while t < seconds - 0.3:
        s = int(t * sr)
        if rng.random() < 0.5:  # a consonant: a band of noise, 30-70 ms
            m = min(int(rng.uniform(0.03, 0.07) * sr), n - s)
            spec = np.fft.rfft(rng.standard_normal(m))
            f = np.fft.rfftfreq(m, 1 / sr)
            burst = np.fft.irfft(spec * ((f > 2500) & (f < 8000)), m)
            out[s : s + m] += burst * 0.2 / (np.sqrt(np.mean(burst**2)) + 1e-12) * np.hanning(m)
            s += int(0.8 * m)
        m = min(int(rng.uniform(0.12, 0.3) * sr), n - s)
        if m < int(0.05 * sr):
            break
        tt = np.arange(m) / sr
        glide = rng.choice([-1, 1]) * rng.uniform(1.0, 4.0)  # semitones over the syllable
        declination = 1.0 - 2.0 * min(1.0, (t - phrase_start) / 2.0)  # +1 .. -1 semitone over a phrase
        semis = declination + glide * (tt / tt[-1] - 0.5) + 0.2 * np.sin(2 * np.pi * 4.5 * tt)
        f_t = f0 * 2 ** (semis / 12)
        phase = 2 * np.pi * np.cumsum(f_t) / sr
        formants = _SPEECH_VOWELS[int(rng.integers(len(_SPEECH_VOWELS)))]
        v = np.zeros(m)
        for h in range(1, int(5000 / f_t.max())):
            fh = h * f_t
            a = sum(g * np.exp(-0.5 * ((fh - fc) / (60 + 0.05 * fc)) ** 2) for g, fc in zip((1, 0.6, 0.3), formants))
            v += (a + 0.05 / h) * np.sin(h * phase)
        env = np.clip(tt / 0.02, 0, 1) * np.clip((tt[-1] - tt) / 0.04, 0, 1)
        out[s : s + m] += v * env * 0.2 / (np.sqrt(np.mean(v[env > 0.5] ** 2)) + 1e-12)
        t = (s + m) / sr
        if rng.random() < 0.2:  # a pause ends the phrase
            t += rng.uniform(0.3, 0.5)
            phrase_start = t
        else:
            t += rng.uniform(0.04, 0.15)
    return out.astype(np.float32)
