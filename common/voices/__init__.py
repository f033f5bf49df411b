"""Voices on the shared volume: the library of clips (``library``), checking and preparing a
reference clip (``clips``), and what can go wrong (``errors``)."""
