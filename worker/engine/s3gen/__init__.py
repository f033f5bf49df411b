"""S3Gen, speech tokens to audio: each stream's windows planned and joined, its positional
noise, the batched runner (encoder, flow, vocoder) and the loop that decodes waiting windows
most urgent first.

Never imports :mod:`..t3`: the two stages meet only in the pipeline.
"""
