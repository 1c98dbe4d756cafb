"""Default settings for BestChat.

Every name here can be overridden by the file named in ``BESTCHAT_CONFIG`` and then by an
environment variable with the ``BESTCHAT_`` prefix (``BESTCHAT_DATABASE_URL=...``). Values from
the environment are parsed as JSON when they parse (numbers, booleans, lists), else kept as text.
A setting whose default is True or False (and JOBS_IN_PROCESS) must be true/false/1/0/yes/no/on/off
in any case, from the environment or a file; anything else refuses to start, naming the setting.
With nothing configured the server runs in *embedded mode*: SQLite under ``instance/``, no Redis,
jobs on an in-process gevent pool, and the offline demo model.
"""

# "development" (embedded defaults, secrets generated under instance/) or "production"
# (refuses to start without a real SECRET_KEY and ENCRYPTION_KEYS).
ENV_NAME = "development"

# SQLAlchemy URL. None means sqlite:///<instance>/bestchat.db (WAL mode, busy timeout).
DATABASE_URL = None
SQLITE_BUSY_TIMEOUT_MS = 5000
# PostgreSQL connections kept open per process, and how many more it may open under load
# (SQLAlchemy's defaults, 5 + 10, make a gevent worker running dozens of answers queue for a
# connection and open/close overflow connections all the time). Mind the server's
# max_connections: every web and worker process can hold up to their sum.
DATABASE_POOL_SIZE = 10
DATABASE_MAX_OVERFLOW = 10
# The side pool, per process, for single statements run beside a session (the message store's
# one-statement writes, a generation's claim, reads kept out of a caller's transaction): a
# request that holds a connection of the main pool never waits for a second one of the same
# pool, which under a burst of requests (more than the main pool holds) would wait on each
# other until the pool's timeout. Counted in max_connections too.
DATABASE_SIDE_POOL_SIZE = 5
DATABASE_SIDE_MAX_OVERFLOW = 5
# A pooled connection idle this long (seconds) is pinged before use, and replaced if the
# database dropped it; connections in steady use are not (a ping is one more round trip).
DATABASE_PING_IDLE_SECONDS = 1.0

# redis://host:port/db. None means embedded mode: in-memory bus and rate limits, no Celery.
REDIS_URL = None
# Connections one process may open (a blocking pool: past it, callers wait up to the timeout).
REDIS_MAX_CONNECTIONS = 200
REDIS_POOL_TIMEOUT = 5

# Signs session cookies. None in development: generated once into instance/secret_key.
SECRET_KEY = None

# Comma-separated Fernet keys; the first encrypts, all decrypt. None in development:
# generated once into instance/encryption_keys.
ENCRYPTION_KEYS = None

# Largest request body accepted by the API, in bytes (413 past it).
MAX_CONTENT_LENGTH = 512 * 1024
# Largest body of a POST /v1/chat/completions (it may carry images as data: URLs).
OPENAI_MAX_BODY_BYTES = 16 * 1024 * 1024

# Who may create an account through POST /api/v1/auth/register: "open" (anyone), "invite"
# (only with a valid invitation from an admin) or "closed" (same as "invite": an invitation
# works in every mode). The legacy REGISTRATION_OPEN = False (file or environment) means
# "closed".
REGISTRATION = "open"
# Days an invitation link made in the admin console stays valid.
INVITE_DAYS = 7

# Password policy.
PASSWORD_MIN_LENGTH = 8

# Rate limits as "count/seconds". RATELIMIT_LOGIN_PER_IP counts every sign-in attempt of an
# address. Wrong passwords are counted per source (a browser that signed in to the account
# before, else the address: RATELIMIT_LOGIN_PER_DEVICE) and, from sources that never signed in
# to the account, per account (RATELIMIT_LOGIN_PER_ACCOUNT): failures made elsewhere never
# refuse the owner's correct password from a known browser or address (docs/security.md).
RATELIMIT_LOGIN_PER_IP = "30/60"
RATELIMIT_LOGIN_PER_ACCOUNT = "10/300"
RATELIMIT_LOGIN_PER_DEVICE = "5/300"
# Days an address that signed in to an account counts as known for it.
LOGIN_KNOWN_ADDRESS_DAYS = 90
RATELIMIT_REGISTER_PER_IP = "10/3600"
# POST /api/v1/providers/<id>/test, per user (each test is an outbound request).
RATELIMIT_PROVIDER_TEST = "10/60"

# Number of reverse proxies in front of the server whose X-Forwarded-* headers are trusted.
TRUSTED_PROXY_COUNT = 0

# Session cookie hardening. Cookies are Secure whenever the request came over HTTPS (behind a
# TLS-terminating proxy: set TRUSTED_PROXY_COUNT, or SESSION_COOKIE_SECURE = True).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = False
# Days a remember-me cookie ("remember": true at sign-in) keeps a browser signed in. Its token
# is random, stored hashed, and revoked by sign-out, a password change or disabling the account.
REMEMBER_DAYS = 30

# Plugins (docs/plugins.md "Choosing which plugins load"). Names are distribution names,
# compared PEP 503 normalized (BestChat_Demo is bestchat-demo); a name that matches no
# installed plugin is warned about at start, in `bestchat plugins list` and in the console.
# Comma-separated allow-list (None = all installed; "" = none):
LOAD_PLUGINS = None
# Load only the TRUSTED_PLUGINS (to recover from a bad third-party plugin); they also load
# first, so no other plugin can take the names of their providers, tools and strategies.
SAFE_MODE = False
TRUSTED_PLUGINS = ["bestchat-demo", "bestchat-openai", "bestchat-litellm", "bestchat-tools", "bestchat-context"]
# Names never imported (comma-separated); the console cannot lift them.
BLOCK_PLUGINS = ""
# Log every plugin hook call (BESTCHAT_TRACE_PLUGINS=1).
TRACE_PLUGINS = False

# ---- uploads (docs/uploads.md) ----
# Where uploaded files are stored: "local" (UPLOAD_FOLDER; relative paths are under the
# instance folder, which every web and worker process must share) or "s3" (any
# S3-compatible store: the UPLOAD_S3_* settings).
UPLOAD_STORAGE = "local"
UPLOAD_FOLDER = "uploads"
UPLOAD_S3_BUCKET = None
UPLOAD_S3_ENDPOINT_URL = None
UPLOAD_S3_REGION = None
UPLOAD_S3_ACCESS_KEY_ID = None
UPLOAD_S3_SECRET_ACCESS_KEY = None
UPLOAD_S3_PREFIX = "uploads/"
# The largest file one upload may be (bytes); larger ones are refused with 413.
UPLOAD_MAX_BYTES = 20 * 1024 * 1024
# The most text kept of one file for the model (characters; the rest is cut, and said so).
UPLOAD_TEXT_MAX_CHARS = 2_000_000
# A DOCX (a zip) whose parts would unpack to more than this is refused (zip bombs).
UPLOAD_UNZIPPED_MAX_BYTES = 100 * 1024 * 1024

# ---- long conversations (docs/context.md) ----
# The strategies that fit a conversation into its model's window, in order, when the
# conversation chooses none; whatever they do, the prompt never exceeds the budget.
CONTEXT_STRATEGIES = ["compress", "summarize", "truncate"]
# A model's input window when neither its provider, litellm's model map nor the provider
# config (option "context_window") knows it.
CONTEXT_DEFAULT_WINDOW = 8192
# Tokens kept free for the answer (the answer's max_tokens when set), at most a quarter of
# the window.
CONTEXT_ANSWER_RESERVE = 4096
# What an image costs in a prompt (tokens).
CONTEXT_IMAGE_TOKENS = 1000
# The tiktoken encoding of models whose provider names none.
CONTEXT_DEFAULT_ENCODING = "o200k_base"
# The longest summary the summarize strategy asks for (tokens).
CONTEXT_SUMMARY_MAX_TOKENS = 1024
# A new summary keeps the newest turns that fill at most this share of the room beside it, so
# the turns that follow fit with it and it is reused (1.0: keep as much as fits).
CONTEXT_SUMMARY_KEEP_SHARE = 0.5
# The compress strategy leaves the newest turns alone, and shortens only what is longer.
CONTEXT_COMPRESS_KEEP_TURNS = 2
CONTEXT_COMPRESS_MIN_TOKENS = 200

# The model used when a message names none, as "<provider>/<model>" (the offline demo works
# with no key and no network).
DEFAULT_MODEL = "demo/demo"

# ---- chat streaming (docs/streaming.md) ----
# Each process publishes the text its running answers received as frames (one frame = one
# chunk = one seq), all answers' frames in one Redis round trip. Text that arrives while a
# round trip is in flight goes into the next frame, so there is no fixed frame timer.
# STREAM_FRAME_MS > 0 also holds an answer's next frame until that many ms after its last
# one (fewer, bigger frames for slow clients); 0 publishes as soon as possible.
STREAM_FRAME_MS = 0
# With more than STREAM_BATCH_AFTER answers running in the process, the frame writer waits
# this many ms after the first new text before writing, to gather the others' text into the
# same round trip (the per-frame cost falls with the batch size). Below, it writes at once.
STREAM_BATCH_MS = 5.0
STREAM_BATCH_AFTER = 10
# A streaming message's partial content (and heartbeat) is saved at least this often.
STREAM_SAVE_INTERVAL = 1.0
# Redis stream of one message: approximate entry cap, and seconds it is kept after the answer
# ends (resume works within this window; later, read the message over REST).
STREAM_MAXLEN = 20000
STREAM_TTL = 3600
# A generation with no provider event for this many seconds fails with provider_timeout.
STREAM_IDLE_TIMEOUT = 300
# Run generation jobs in this process (gevent pool) instead of Celery. None: only in embedded mode.
JOBS_IN_PROCESS = None
# Generations run at once by the in-process pool (its capacity; more wait in order).
JOBS_CONCURRENCY = 100
# Generations run at once by one `bestchat worker` process (its `-c`; gevent greenlets). Each
# worker registers its slots in Redis; the sum over live workers is the capacity.
WORKER_CONCURRENCY = 100
# How many new answers may wait (status `queued`) once every slot is busy; beyond that a send
# is refused at once with 503 `overloaded` (and Retry-After), nothing stored.
GENERATION_QUEUE_LIMIT = 100
# Answers one user may have active at once (pending, queued or streaming), counted across every
# web and worker process. It keeps one account to a small share of the slots and the queue (a
# few tabs or devices chatting at once), so no user can make every other user's sends
# `overloaded`; beyond it a send is refused with 429 `too_many_generations` (and Retry-After),
# nothing stored. 0 = no per-user limit (e.g. one trusted account driving a benchmark).
USER_MAX_ACTIVE_GENERATIONS = 4
# New answers one user may start (sends, edits, regenerations, /v1/chat/completions), as
# "count/seconds", counted in the same atomic step; past it 429 `rate_limited` with
# Retry-After, nothing stored. "" = no limit.
RATELIMIT_SEND_PER_USER = "30/60"
# Longest an answer may take, in seconds from its start: a longer one is ended `failed` with
# code `too_long`, its partial content kept, so a slow provider (or one the user made slow)
# cannot hold a generation slot for hours. 0 = no limit.
GENERATION_MAX_SECONDS = 600
# The reaper marks a streaming message whose heartbeat is older than REAPER_STALE_AFTER
# seconds (or a pending one older than REAPER_PENDING_AFTER) as interrupted; it runs every
# REAPER_INTERVAL seconds in each web process (under a Redis lock) and at startup.
REAPER_INTERVAL = 5
REAPER_STALE_AFTER = 20
REAPER_PENDING_AFTER = 900
# WebSocket: largest accepted client frame in bytes (bigger ones get an error frame), and
# seconds between server keep-alive pings.
WS_MAX_FRAME = 512 * 1024
WS_PING_INTERVAL = 25
# An open WebSocket re-checks its credentials (token not revoked, session not ended, account
# enabled, role unchanged) at once when they change, and also every this many seconds.
WS_AUTH_RECHECK = 60
# Seconds a single-use socket ticket (POST /api/v1/ws-ticket) stays valid.
WS_TICKET_TTL = 30
# Longest user message, in characters.
MESSAGE_MAX_CHARS = 200000

# ---- outbound connections (docs/security.md "Outbound access") ----
# Every connection the server opens to an address a user chose (a provider's base_url) is
# resolved and checked first, and made to the checked address only. Loopback, private,
# link-local, CGNAT, multicast, reserved and cloud metadata addresses are refused unless listed
# here. Entries are CIDRs ("10.0.0.0/8", "::1"), addresses or host names ("ollama.lan",
# "*.lan"); from the environment as JSON: BESTCHAT_OUTBOUND_ALLOW='["10.0.0.0/8","ollama.lan"]'.
# Allowed for every user's connections (a shared model server on the LAN):
OUTBOUND_ALLOW = []
# Allowed only for trusted connections: global configs and configs owned by an admin (a model
# server on this machine, such as Ollama on localhost:11434). Ordinary users never get these.
OUTBOUND_ADMIN_ALLOW = ["127.0.0.0/8", "::1", "localhost"]
# Refused for everyone, even public addresses and admins (wins over both allow lists).
OUTBOUND_DENY = []
# None: the system resolver. A function (host, port) -> [address, ...] replaces it (tests).
OUTBOUND_RESOLVER = None
# None: socket.create_connection. A function with its signature replaces it (tests).
OUTBOUND_CONNECTOR = None

# ---- the server's own cloud credentials (docs/security.md) ----
# litellm model families that sign requests with credentials from the server's environment or
# instance role (bedrock, sagemaker, vertex_ai...) are refused; families listed here are
# allowed, for global configs only (an admin's decision to share the server's credentials).
LITELLM_AMBIENT_CREDENTIAL_PROVIDERS = []
# Worker processes remove cloud credentials (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*...)
# from their environment at start, so no provider library can pick them up. True keeps them
# (needed when LITELLM_AMBIENT_CREDENTIAL_PROVIDERS is used).
WORKER_KEEP_CLOUD_CREDENTIALS = False

# ---- tools (docs/tools.md; the sandbox: docs/security.md "Tool sandbox") ----
# Tools nobody may use (names), whatever the plugins register.
TOOLS_DISABLED = []
# Most model <-> tool rounds in one answer; the answer then ends failed/tool_rounds.
TOOLS_MAX_ROUNDS = 8
# Seconds a call waits for its approval; no answer counts as denied (status timed_out).
TOOL_APPROVAL_TIMEOUT = 600
# The highest risk a user's auto-approval may cover: "low", "medium", "high" or "none". Calls
# above it always ask, whatever the user chose.
TOOL_AUTO_APPROVE_MAX_RISK = "medium"
# Which sandbox runs tools: "auto" (bubblewrap when it works, else a plain child process that
# may run only low-risk tools), "bwrap" (required: refuse every tool without it) or "none"
# (never isolate: low-risk tools only).
TOOL_SANDBOX = "auto"
# The bubblewrap binary.
TOOL_BWRAP = "bwrap"
# Limits of one tool run (a tool may ask for a shorter timeout).
TOOL_TIMEOUT = 30
TOOL_CPU_SECONDS = 10
TOOL_MEMORY_MB = 512
TOOL_FILE_SIZE_MB = 16
TOOL_OPEN_FILES = 64
TOOL_PROCESSES = 32
TOOL_OUTPUT_MAX_BYTES = 1024 * 1024
# The URL-fetch tool: host names it may fetch (empty: any host the outbound policy permits)
# and host names it never fetches; both also through OUTBOUND_ALLOW / OUTBOUND_DENY.
URL_FETCH_ALLOW_HOSTS = []
URL_FETCH_DENY_HOSTS = []
URL_FETCH_MAX_BYTES = 512 * 1024
URL_FETCH_TIMEOUT = 10
URL_FETCH_MAX_REDIRECTS = 5

# ---- settings changed in the admin console (docs/admin.md "Settings") ----
# Plugins an admin blocked in the console (names). Stored as a site setting; BLOCK_PLUGINS
# above is the environment's own list and cannot be lifted from the console.
BLOCKED_PLUGINS = []
# Each process checks at most this often (seconds) whether an admin changed a setting in
# another process (one Redis GET), and applies the change.
SITE_SETTINGS_REFRESH_SECONDS = 1.0

# ---- billing: plans sold through Stripe (docs/billing.md) ----
# Billing is on when both keys are set; with either missing, plans are assigned by an admin
# and the checkout, portal and webhook routes answer 404 billing_disabled. Secrets: give them
# as BESTCHAT_STRIPE_SECRET_KEY / BESTCHAT_STRIPE_WEBHOOK_SECRET; they are never logged or shown.
STRIPE_SECRET_KEY = None
# The signing secret of the webhook endpoint (whsec_...) for /api/v1/billing/webhook.
STRIPE_WEBHOOK_SECRET = None
# Stripe's API address (None: Stripe's own); a test server's address in tests.
STRIPE_API_BASE = None
# The public address of this server (https://chat.example.com) for the pages Stripe sends the
# user back to; None: the address of the request that started the checkout.
BILLING_PUBLIC_URL = None
