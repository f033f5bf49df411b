"""Audio for clients: the output formats, their streaming encoders, tempo, the WAV header."""
