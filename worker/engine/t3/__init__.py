"""T3, text to speech tokens, for every live request in one batch: which sequences step next
and who goes first (plain Python), the model runner with its KV cache, decode step, CUDA graphs,
sampling and alignment probe, each chunk's prompt, and the token buffers requests read from.

Never imports :mod:`..s3gen`: the two stages meet only in the pipeline.
"""
