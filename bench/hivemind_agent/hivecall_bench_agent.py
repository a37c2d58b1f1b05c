"""An instant in-process agent for hivemind-core 4.0.0 (the benchmark's trivial agent).

hivemind-core's own OVOS agent protocol (ovos_bus_client.hpm.OVOSProtocol) with its bus left
as an in-process FakeBus instead of a connection to an OVOS messagebus, plus one handler: an
utterance is answered at once with `speak` and `ovos.utterance.handled`. Replies travel back
to the asking client exactly as they do from a real ovos-core (the protocol's catch-all
"message" handler routes them by destination). This is what hivecall's echo agent is to
hivecall: no model, no bus hop, so the benchmark measures the servers.
"""

import dataclasses

from ovos_bus_client.hpm import OVOSProtocol


@dataclasses.dataclass()
class EchoAgentProtocol(OVOSProtocol):
    def __post_init__(self):
        self.register_bus_handlers()  # keep the FakeBus: no OVOS messagebus to connect to
        self.bus.on("recognizer_loop:utterance", self.answer)

    def answer(self, message):
        heard = (message.data.get("utterances") or [""])[0]
        lang = message.data.get("lang", "en-us")
        self.bus.emit(message.reply("speak", {"utterance": f"I heard: {heard}", "lang": lang}))
        self.bus.emit(message.reply("ovos.utterance.handled", {}))
