"""What the master (``app``) and the workers (``worker``) have in common, torch-free.

The wire protocol between them (messages, error codes, worker states), the settings, the
synthesis request schema (parameters, variants, languages), the voice library on disk, logging
and the audio helpers both sides use. Neither process's code is imported here, and nothing here
imports torch, so the master starts in a second and never loads a model.
"""
