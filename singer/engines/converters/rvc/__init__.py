"""``rvc``: singer's own RVC v1/v2 inference (no fairseq, no rvc-python), for voices of kind ``rvc``.

  engine      RVCConverter: the workflow engine (params, key choice, reading and writing the stems)
  safeload    torch pickles read without running code (weights_only; fairseq configs as inert stubs)
  checkpoint  community .pth voice models: validate, describe, build, merge, save
  synth       the synthesizer (text encoder, flow, NSF-HiFiGAN, speaker embedding) with RVC's parameter names
  hubert      content features from HuBERT/ContentVec (transformers folder or fairseq hubert_base.pt)
  f0          pitch trackers (fcpe, crepe, rmvpe, harvest, pm), coarse pitch, ranges and --key auto
  rmvpe       RMVPE for a user-supplied rmvpe.pt
  index       faiss retrieval index: load, blend, build, merge
  pipeline    RVC's conversion of a 16 kHz vocal, chunked, with RVC's numerics
  voice       RVC voices in the voice store: add, verify, merge
  testing     random checkpoints in the real format, for tests and benchmarks
Nothing here imports torch when the package is imported; the modules that need it import it themselves.
"""
