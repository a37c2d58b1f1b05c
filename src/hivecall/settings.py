"""The one table of settings.

Each field of :class:`Settings` is a row: its name, default, environment variables and help all
live on the field, and everything else (the environment reader, the TOML reader, `hivecall
doctor`, `/api/settings` and the docs test) is derived from that table. Settings are read once,
at the edge (the CLI), and passed down; nothing below reads the environment.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from hivecall.errors import ConfigError


def _row(help: str, *env: str, secret: bool = False, editable: bool = False) -> dict[str, Any]:
    """`editable` rows can also be changed from the dashboard (stored in the hub's database)."""
    return {"help": help, "env": env, "secret": secret, "editable": editable}


CALL_MODES = ("auto", "byok", "local", "cloud")


@dataclass(frozen=True, kw_only=True)
class Settings:
    home: Path = field(
        default_factory=lambda: Path(platformdirs.user_data_dir("hivecall")),
        metadata=_row("Folder for the database and the settings file.", "HIVECALL_HOME"),
    )
    config_file: Path | None = field(
        default=None,
        metadata=_row(
            "Optional TOML file of settings (default: HOME/hivecall.toml if it exists).",
            "HIVECALL_CONFIG",
        ),
    )
    host: str = field(
        default="127.0.0.1", metadata=_row("Address the hub listens on.", "HIVECALL_HOST")
    )
    port: int = field(default=8765, metadata=_row("Port the hub listens on.", "HIVECALL_PORT"))
    public_url: str = field(
        default="",
        metadata=_row(
            "URL people use to reach the hub (default: http://HOST:PORT).", "HIVECALL_PUBLIC_URL"
        ),
    )
    https: bool = field(
        default=False,
        metadata=_row(
            "Serve the web port over HTTPS on the network addresses (phones get a microphone "
            "only over HTTPS), with a certificate from the hub's own CA in HOME/tls unless "
            "tls_cert is set; loopback addresses keep plain HTTP for this computer.",
            "HIVECALL_HTTPS",
        ),
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=_row(
            "PEM certificate (chain) for https, e.g. for a real domain or Tailscale (default: "
            "one the hub issues from its own CA).",
            "HIVECALL_TLS_CERT",
        ),
    )
    tls_key: Path | None = field(
        default=None,
        metadata=_row(
            "PEM private key of tls_cert (default: inside the certificate file).",
            "HIVECALL_TLS_KEY",
        ),
    )
    allowed_hosts: str = field(
        default="",
        metadata=_row(
            "Comma list of more names the hub answers to (Host header) besides loopback, "
            "public_url's host and this machine's name; * answers to any name.",
            "HIVECALL_ALLOWED_HOSTS",
        ),
    )
    trusted_proxies: str = field(
        default="",
        metadata=_row(
            "Comma list of proxy addresses (or CIDRs) whose X-Forwarded-For/-Proto the hub "
            "believes (default: none, the socket's peer is the client).",
            "HIVECALL_TRUSTED_PROXIES",
        ),
    )
    database_url: str = field(
        default="",
        metadata=_row(
            "SQLAlchemy URL of the store (default: SQLite in HOME; postgresql://… for PostgreSQL).",
            "HIVECALL_DATABASE_URL",
        ),
    )
    owner_token: str = field(
        default="",
        metadata=_row(
            "Owner token, at least 32 characters; if empty one is generated on first start and "
            "shown once.",
            "HIVECALL_OWNER_TOKEN",
            secret=True,
        ),
    )
    openai_api_key: str = field(
        default="",
        metadata=_row(
            "The user's OpenAI key for BYOK calls.",
            "OPENAI_REALTIME_KEY",
            "OPENAI_API_KEY",
            secret=True,
            editable=True,
        ),
    )
    openai_base_url: str = field(
        default="https://api.openai.com/v1",
        metadata=_row("OpenAI API base URL (minting and WebRTC).", "HIVECALL_OPENAI_BASE_URL"),
    )
    realtime_model: str = field(
        default="gpt-realtime",
        metadata=_row(
            "OpenAI Realtime model for voice calls.", "HIVECALL_REALTIME_MODEL", editable=True
        ),
    )
    realtime_voice: str = field(
        default="marin",
        metadata=_row("Voice for OpenAI Realtime calls.", "HIVECALL_REALTIME_VOICE", editable=True),
    )
    realtime_transcribe_model: str = field(
        default="gpt-4o-mini-transcribe",
        metadata=_row(
            "Model that transcribes the caller's speech in BYOK calls.",
            "HIVECALL_REALTIME_TRANSCRIBE_MODEL",
        ),
    )
    default_call_mode: str = field(
        default="auto",
        metadata=_row(
            "Call mode when a call does not name one: auto (byok with a key, else local), "
            "byok, local or cloud.",
            "HIVECALL_DEFAULT_CALL_MODE",
            editable=True,
        ),
    )
    call_secret_ttl: int = field(
        default=120,
        metadata=_row(
            "Seconds a minted Realtime client secret stays valid for starting a call.",
            "HIVECALL_CALL_SECRET_TTL",
        ),
    )
    openai_timeout: float = field(
        default=10.0,
        metadata=_row("Seconds to wait for OpenAI when minting a call.", "HIVECALL_OPENAI_TIMEOUT"),
    )
    pairing_code_ttl: int = field(
        default=300,
        metadata=_row(
            "Seconds a phone pairing code stays valid (it works once).",
            "HIVECALL_PAIRING_CODE_TTL",
        ),
    )
    call_connect_timeout: float = field(
        default=30.0,
        metadata=_row(
            "Seconds a call may take to connect (offer, then media) before the hub fails it "
            "(call_unanswered, media_failed); the page gives up on ICE after the same time.",
            "HIVECALL_CALL_CONNECT_TIMEOUT",
        ),
    )
    local_max_calls: int = field(
        default=2,
        metadata=_row(
            "Local calls the hub runs at once (each one's speech recognition uses the CPU).",
            "HIVECALL_LOCAL_MAX_CALLS",
        ),
    )
    local_silence_ms: int = field(
        default=500,
        metadata=_row(
            "Milliseconds of silence that end what the caller says in a local call.",
            "HIVECALL_LOCAL_SILENCE_MS",
        ),
    )
    # -- cloud calls (cloud/): LiveKit rooms and the `hivecall worker` -------------------------
    cloud_calls: bool = field(
        default=False,
        metadata=_row(
            "The cloud plan: allow cloud calls (LiveKit rooms; they also need the LIVEKIT_* "
            "settings).",
            "HIVECALL_CLOUD_CALLS",
        ),
    )
    livekit_url: str = field(
        default="",
        metadata=_row("LiveKit server URL for cloud calls (wss://… or https://…).", "LIVEKIT_URL"),
    )
    livekit_api_key: str = field(
        default="", metadata=_row("LiveKit API key.", "LIVEKIT_API_KEY", secret=True)
    )
    livekit_api_secret: str = field(
        default="", metadata=_row("LiveKit API secret.", "LIVEKIT_API_SECRET", secret=True)
    )
    livekit_agent_name: str = field(
        default="hivecall",
        metadata=_row(
            "Agent name the hub dispatches into cloud calls and `hivecall worker` registers.",
            "HIVECALL_LIVEKIT_AGENT_NAME",
        ),
    )
    cloud_token_ttl_minutes: int = field(
        default=15,
        metadata=_row(
            "Minutes a cloud call's join token (owner's, device's or guest's) stays valid.",
            "HIVECALL_CLOUD_TOKEN_TTL_MINUTES",
        ),
    )
    cloud_max_participants: int = field(
        default=8,
        metadata=_row(
            "Most participants (people and agents) in one cloud call's room.",
            "HIVECALL_CLOUD_MAX_PARTICIPANTS",
        ),
    )
    cloud_empty_timeout: int = field(
        default=300,
        metadata=_row(
            "Seconds LiveKit keeps a cloud call's room open while nobody has joined.",
            "HIVECALL_CLOUD_EMPTY_TIMEOUT",
        ),
    )
    worker_hub_url: str = field(
        default="",
        metadata=_row(
            "Hub URL `hivecall worker` talks to (default: the hub's public URL).",
            "HIVECALL_WORKER_HUB_URL",
        ),
    )
    worker_wait_for_human: float = field(
        default=60.0,
        metadata=_row(
            "Seconds an agent in a cloud call waits for a person to join before it leaves.",
            "HIVECALL_WORKER_WAIT_FOR_HUMAN",
        ),
    )
    turn_timeout: float = field(
        default=600.0,
        metadata=_row("Seconds a runtime may work on one turn.", "HIVECALL_TURN_TIMEOUT"),
    )
    max_message_chars: int = field(
        default=16000,
        metadata=_row(
            "Longest message a turn accepts, in characters.", "HIVECALL_MAX_MESSAGE_CHARS"
        ),
    )
    spoken_max_chars: int = field(
        default=900,
        metadata=_row("Longest spoken answer, in characters.", "HIVECALL_SPOKEN_MAX_CHARS"),
    )
    voice_ack_s: float = field(
        default=8.0,
        metadata=_row(
            "Seconds a voice tool call waits for the agent's answer; a longer turn answers at "
            "once that it has started, goes on, and its answer is spoken when it is ready.",
            "HIVECALL_VOICE_ACK_S",
        ),
    )
    voice_progress_s: float = field(
        default=20.0,
        metadata=_row(
            "Seconds between spoken progress lines while an agent works on a call's request "
            "(only when nothing else is being said).",
            "HIVECALL_VOICE_PROGRESS_S",
        ),
    )
    max_body_bytes: int = field(
        default=1_048_576,
        metadata=_row("Largest JSON request body, in bytes.", "HIVECALL_MAX_BODY_BYTES"),
    )
    log_level: str = field(
        default="info", metadata=_row("Log level: debug, info, warning.", "HIVECALL_LOG_LEVEL")
    )
    # -- OpenAI- and Ollama-compatible API (compat/) ---------------------------------------------
    compat_port: int = field(
        default=0,
        metadata=_row(
            "Port of a separate listener serving only the OpenAI- and Ollama-compatible API "
            "(0: none; the main port serves that API too).",
            "HIVECALL_COMPAT_PORT",
        ),
    )
    compat_host: str = field(
        default="",
        metadata=_row(
            "Address the compat listener listens on (default: HOST).", "HIVECALL_COMPAT_HOST"
        ),
    )
    compat_open_agents: str = field(
        default="",
        metadata=_row(
            "Comma list of agents the compat listener serves WITHOUT an API key, for LAN "
            "clients that cannot send one (needs compat_port; announced loudly at start).",
            "HIVECALL_COMPAT_OPEN_AGENTS",
        ),
    )
    compat_allowed_origins: str = field(
        default="",
        metadata=_row(
            "Comma list of web page origins (https://host[:port]) that may use the compat API "
            "from a browser (default: none; requests with another Origin are refused).",
            "HIVECALL_COMPAT_ALLOWED_ORIGINS",
        ),
    )
    # -- HiveMind node (hivemind/) ---------------------------------------------------------------
    hivemind_port: int = field(
        default=5678,
        metadata=_row(
            "Port of the HiveMind listener that `hivecall serve` starts (0: none).",
            "HIVECALL_HIVEMIND_PORT",
        ),
    )
    hivemind_host: str = field(
        default="",
        metadata=_row(
            "Address the HiveMind listener listens on (default: HOST).", "HIVECALL_HIVEMIND_HOST"
        ),
    )
    hivemind_ciphers: str = field(
        default="AES-GCM,CHACHA20-POLY1305",
        metadata=_row(
            "Comma list of ciphers HiveMind clients may choose (AES-GCM, CHACHA20-POLY1305).",
            "HIVECALL_HIVEMIND_CIPHERS",
        ),
    )
    hivemind_encodings: str = field(
        default="JSON-B91,JSON-Z85B,JSON-Z85P,JSON-B64,JSON-URLSAFE-B64,JSON-B32,JSON-HEX",
        metadata=_row(
            "Comma list of text encodings HiveMind clients may choose for JSON frames.",
            "HIVECALL_HIVEMIND_ENCODINGS",
        ),
    )
    hivemind_binarize: bool = field(
        default=True,
        metadata=_row(
            "Offer binarized (bit-packed, compressed) frames to HiveMind clients.",
            "HIVECALL_HIVEMIND_BINARIZE",
        ),
    )
    hivemind_max_frame_bytes: int = field(
        default=1_048_576,
        metadata=_row(
            "Largest HiveMind frame, in bytes (bigger ones close the connection).",
            "HIVECALL_HIVEMIND_MAX_FRAME_BYTES",
        ),
    )
    hivemind_handshake_timeout: float = field(
        default=10.0,
        metadata=_row(
            "Seconds a HiveMind client has to finish its handshake.",
            "HIVECALL_HIVEMIND_HANDSHAKE_TIMEOUT",
        ),
    )
    hivemind_tls_cert: Path | None = field(
        default=None,
        metadata=_row(
            "PEM certificate (chain) for wss:// on the HiveMind listener (default: plain ws://).",
            "HIVECALL_HIVEMIND_TLS_CERT",
        ),
    )
    hivemind_tls_key: Path | None = field(
        default=None,
        metadata=_row(
            "PEM private key of hivemind_tls_cert (default: inside the certificate file).",
            "HIVECALL_HIVEMIND_TLS_KEY",
        ),
    )
    hivemind_require_tls: bool = field(
        default=False,
        metadata=_row(
            "Refuse to start the HiveMind listener without hivemind_tls_cert (wss:// only).",
            "HIVECALL_HIVEMIND_REQUIRE_TLS",
        ),
    )
    hivemind_min_protocol: int = field(
        default=1,
        metadata=_row(
            "Oldest HiveMind protocol clients may use: 1 (the v1 password handshake, or v3) "
            "or 3 (v3 Noise only; v1 clients are closed with a reason).",
            "HIVECALL_HIVEMIND_MIN_PROTOCOL",
        ),
    )
    hivemind_allowed_origins: str = field(
        default="",
        metadata=_row(
            "Comma list of web page origins (https://host[:port]) that may open the HiveMind "
            "listener from a browser (default: none; any other Origin but the listener's own "
            "gets 403).",
            "HIVECALL_HIVEMIND_ALLOWED_ORIGINS",
        ),
    )

    def __post_init__(self) -> None:
        if self.default_call_mode not in CALL_MODES:
            raise ConfigError(f"default_call_mode must be one of: {', '.join(CALL_MODES)}")
        if self.pairing_code_ttl < 1:
            raise ConfigError("pairing_code_ttl must be at least 1 second")
        if not 5 <= self.call_connect_timeout <= 600:
            raise ConfigError("call_connect_timeout must be between 5 and 600 seconds")
        if self.tls_key and not self.tls_cert:
            raise ConfigError("tls_key needs tls_cert (the certificate it belongs to)")
        if self.local_max_calls < 0:
            raise ConfigError("local_max_calls must be 0 (no local calls) or more")
        if not 240 <= self.local_silence_ms <= 3000:
            raise ConfigError("local_silence_ms must be between 240 and 3000")
        if not 1 <= self.cloud_token_ttl_minutes <= 24 * 60:
            raise ConfigError("cloud_token_ttl_minutes must be between 1 and 1440")
        if not 2 <= self.cloud_max_participants <= 100:
            raise ConfigError("cloud_max_participants must be between 2 and 100")
        if not 0 <= self.voice_ack_s <= 600:
            raise ConfigError("voice_ack_s must be between 0 and 600 seconds")
        if not 5 <= self.voice_progress_s <= 600:
            raise ConfigError("voice_progress_s must be between 5 and 600 seconds")
        if self.cloud_empty_timeout < 10:
            raise ConfigError("cloud_empty_timeout must be at least 10 seconds")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'hivecall.db'}"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        # With https on, only loopback speaks plain HTTP (listening.py): this computer's URL.
        if host in ("0.0.0.0", "::", "") or (self.https and not loopback):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SettingRow:
    name: str
    env: tuple[str, ...]
    help: str
    secret: bool
    type: type
    editable: bool = False


_TYPES: dict[str, type] = {
    "Path": Path,
    "Path | None": Path,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
}


def table() -> list[SettingRow]:
    """Every setting, in declaration order."""
    return [
        SettingRow(
            f.name,
            f.metadata["env"],
            f.metadata["help"],
            f.metadata["secret"],
            _TYPES[str(f.type)],
            f.metadata["editable"],
        )
        for f in dataclasses.fields(Settings)
    ]


def _coerce(row: SettingRow, raw: object, origin: str) -> object:
    try:
        if row.type is bool:
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if row.type is Path:
            return Path(str(raw)).expanduser()
        if row.type in (int, float) and isinstance(raw, bool):
            raise ValueError("a boolean is not a number")
        return row.type(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{row.name} from {origin} must be a {row.type.__name__}") from e


def load(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings from, lowest first: defaults, the TOML file, the environment, explicit overrides."""
    rows = {r.name: r for r in table()}
    from_env: dict[str, object] = {}
    for row in rows.values():
        for var in row.env:
            if environ.get(var):
                from_env[row.name] = _coerce(row, environ[var], var)
                break
    explicit = {k: v for k, v in overrides.items() if v is not None}
    home = explicit.get("home") or from_env.get("home") or Settings().home
    config = explicit.get("config_file") or from_env.get("config_file")
    config_path = Path(str(config)) if config else Path(str(home)) / "hivecall.toml"
    from_file: dict[str, object] = {}
    if config or config_path.exists():
        from_file = _read_toml(config_path, rows)
    merged = {**from_file, **from_env, **explicit}
    unknown = set(merged) - set(rows)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return Settings(**merged)


def _read_toml(path: Path, rows: Mapping[str, SettingRow]) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    out: dict[str, object] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in rows:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        out[name] = _coerce(rows[name], value, str(path))
    return out


def pinned(environ: Mapping[str, str]) -> frozenset[str]:
    """Editable settings the environment sets: the dashboard shows them but cannot change them."""
    return frozenset(
        r.name for r in table() if r.editable and any(environ.get(var) for var in r.env)
    )


_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&#]*")


def masked_url(text: str) -> str:
    """`text` with the password of a URL in it shown as ***: postgresql://user:***@host/db (also
    libpq's ?password=). Everything up to the last @ counts as the credentials, so an unescaped
    / or @ in a password cannot end it early; text that is not such a URL comes back as it is."""
    scheme, sep, rest = text.partition("://")
    at = rest.rfind("@")
    if sep and at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}{sep}{rest}")


def describe(
    settings: Settings, *, sources: Mapping[str, str] | None = None
) -> list[dict[str, object]]:
    """The table with current values; secrets only say whether they are set, and a URL's
    password (database_url's, or any other) is shown as ***.

    `sources` says where an editable value comes from (environment, dashboard, config).
    """
    out: list[dict[str, object]] = []
    for row in table():
        value = getattr(settings, row.name)
        shown: object = (
            bool(value) if row.secret else (masked_url(str(value)) if value is not None else None)
        )
        item: dict[str, object] = {
            "name": row.name,
            "env": list(row.env),
            "help": row.help,
            "secret": row.secret,
            "editable": row.editable,
            "value": shown,
        }
        if sources is not None and row.editable:
            item["source"] = sources.get(row.name, "config")
        out.append(item)
    return out
