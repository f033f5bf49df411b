"""The speech-session core every protocol adapter drives: validation, start, text, audio, end."""
