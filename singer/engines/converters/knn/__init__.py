"""``knn``: the voice's own sounds, frame by frame (WORLD analysis, nearest-frame matching, WORLD resynthesis).

engine  KnnConverter: params, the two passes over segments, metadata; voices without a pool go the world way
frames  per-segment analysis and resynthesis
match   speaker-normalised cepstral features, the k-nearest-frame search and blend, envelope composition
pool    FramePool (a voice's analysed frames): learn from recordings, merge by weight, store beside the manifest
"""
