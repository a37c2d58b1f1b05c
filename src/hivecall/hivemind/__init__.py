"""The HiveMind node: hivecall's agents over the HiveMind protocol (legacy v1).

wire (envelope, types), encodings and crypto (password handshake, AES-GCM, ChaCha20-Poly1305,
the JSON text encodings), binary (binarized frames), permissions and clients (who may do
what, in the store), connection and server (the listener), voice (satellites' audio: STT and
TTS off the event loop), client (hivecall asking a remote hub; the `hivemind` runtime and
`HiveMindSolver.spoken_answer`), cli (`hivecall hivemind …`).
"""
