"""Live Talk: a voice-conversation relay between browsers and Gemini Live."""

__version__ = "0.1.0"
