"""The HiveMind node: hivecall's agents over the HiveMind protocol (legacy v1, and v3 Noise).

wire (envelope, types), encodings and crypto (password handshake, AES-GCM, ChaCha20-Poly1305,
the JSON text encodings), binary (binarized frames), noise and v3 (protocol v3: the
Noise_XXpsk2 handshake keyed by argon2id of the password, and the listener's side of it),
permissions and clients (who may do what, in the store), config, connection and server (the
listener), doctor (what `hivecall doctor` says about it), voice (satellites' audio: STT and
TTS off the event loop), client (hivecall asking a remote hub; the `hivemind` runtime and
`HiveMindSolver.spoken_answer`), cli (`hivecall hivemind …`).
"""
