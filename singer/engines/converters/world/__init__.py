"""``world``: the default offline converter (pyworld/WORLD vocoder, CPU only, no model download).

engine   WorldConverter: the workflow engine (params, segmenting, threads, metadata)
dsp      segment planning and the per-segment WORLD analysis / transform / resynthesis
vocoder  pyworld wrapper and the fixed log-frequency grid profiles live on
profile  VoiceProfile (the ``profile`` voice kind): learn, merge, summarise, store as JSON
"""
