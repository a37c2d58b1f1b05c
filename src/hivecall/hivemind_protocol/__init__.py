"""The HiveMind protocol as both ends speak it: messages (wire.py), the v1 ciphers (crypto.py),
binary frames (binary.py), payload encodings (encodings.py) and a client (client.py, what the
hivemind runtime uses to ask a remote hub). Core: the node (hivecall.hivemind, a front door)
and the runtime both build on it, and it imports neither."""
