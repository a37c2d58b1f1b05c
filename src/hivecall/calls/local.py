"""What the hub asks of a local call, whoever answers it: the largest SDP offer it reads, and
how the call hears and narrates (Tuning, from the settings). Core, so the routes that start and
answer local calls need not import the voice/local front door that runs them."""

from __future__ import annotations

from dataclasses import dataclass

from hivecall.settings import Settings

# An SDP offer is a few kilobytes; anything near this is not one.
MAX_OFFER_BYTES = 64 * 1024


# A local call acknowledges a request still running after this long (or HIVECALL_VOICE_ACK_S,
# if shorter): the hub's own voice costs nothing, and after the 0.5 s of silence that ends an
# utterance it keeps the first word heard within about 1.2 s. A turn done by then is just
# answered.
ACK_AFTER_S = 0.5


@dataclass(frozen=True)
class Tuning:
    """How utterances are cut (see vad.Endpointer): the silence that ends one, the shorter
    pause at which transcription starts on a guess, and the least speech that counts; and how
    long work is narrated: the wait before a running request is acknowledged and the least gap
    between two spoken progress lines."""

    silence_ms: int = 500
    pause_ms: int = 200
    min_speech_ms: int = 200
    ack_s: float = ACK_AFTER_S
    progress_s: float = 20.0

    @classmethod
    def of(cls, settings: Settings) -> Tuning:
        return cls(
            silence_ms=settings.local_silence_ms,
            ack_s=min(settings.voice_ack_s, ACK_AFTER_S),
            progress_s=settings.voice_progress_s,
        )
