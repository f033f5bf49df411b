"""Voice conversion: a source recording's speech tokens, from S3Gen's own S3 tokenizer, fed
through the S3Gen stream in a target voice (upstream's ``ChatterboxVC``, streamed).

:mod:`.source_tokens` tokenizes the source in the pieces upstream's tokenizer itself uses for
long audio; :mod:`.stage` is a request's stage that hands those tokens on as a T3 stage does.
"""
