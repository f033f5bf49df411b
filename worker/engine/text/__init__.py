"""Text before and after the model, in plain Python (never torch): cleaning and chunking, each
model's punctuation, text arriving in pieces, token budgets, and per-character timings.
"""
