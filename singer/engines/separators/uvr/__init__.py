"""``uvr``: UVR models (MDX-Net, Roformer/MDX23C, VR...) run through audio-separator, offline.

engine   UVRSeparator: stages (vocals, karaoke, dereverb) mapped to singer's stem names, warm models
catalog  which model a step uses: presets, manifest names, loose files, and the stage vocabulary
compat   audio-separator made offline and quiet (no downloads, progress routed to singer, ONNX MDX)
"""
