"""Offline speech, shared by every door that hears or speaks on this machine (local calls and
HiveMind satellites): the models (models.py), recognition (stt.py), synthesis (tts.py), cutting
speech into utterances (vad.py), and the one recognition and one synthesis thread per process
(workers.py)."""
