"""Production settings, commented. Copy to config/production.py, then start with
``BESTCHAT_CONFIG=config/production.py`` (or set the same names as BESTCHAT_* variables).

Production layout: N web processes (``bestchat serve --workers N``: gunicorn with gevent
workers) behind a load balancer, M Celery workers (``bestchat worker``, one per core),
one PostgreSQL and one Redis shared by all of them.
"""

# Refuse to start without real secrets.
ENV_NAME = "production"

# PostgreSQL, shared by web and workers.
DATABASE_URL = "postgresql+psycopg://bestchat:CHANGE-ME@db.internal:5432/bestchat"
# Connections per process: the main pool (pool + overflow) and the side pool of single
# statements (see config/defaults.py). Keep (web + worker processes) x 30 below the server's
# max_connections (PostgreSQL's default is 100), or put PgBouncer in front.
DATABASE_POOL_SIZE = 10
DATABASE_MAX_OVERFLOW = 10
DATABASE_SIDE_POOL_SIZE = 5
DATABASE_SIDE_MAX_OVERFLOW = 5

# Redis: Celery broker, stream bus, cache and rate limits. Required for more than one process.
REDIS_URL = "redis://redis.internal:6379/0"

# At least 32 random characters: python -c "import secrets; print(secrets.token_urlsafe(48))"
# Better set as BESTCHAT_SECRET_KEY in the environment than written here.
SECRET_KEY = None

# Fernet keys, newest first: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
# To rotate: put a new key first, keep the old ones after it, run `bestchat rotate-keys`.
ENCRYPTION_KEYS = None

# Behind HTTPS and one reverse proxy.
SESSION_COOKIE_SECURE = True
TRUSTED_PROXY_COUNT = 1

# Who may sign up: "open", "invite" (only with an invitation link an admin makes in the
# console) or "closed" (admins create accounts; invitations still work). The older
# REGISTRATION_OPEN = False still means "closed".
REGISTRATION = "invite"
# Days an invitation link stays valid.
INVITE_DAYS = 7

# Generation capacity. Each `bestchat worker` process runs this many answers at once (gevent
# greenlets; one process per core) and registers those slots in Redis. When every slot of the
# live workers is busy, new answers wait with status `queued`; once GENERATION_QUEUE_LIMIT of
# them wait, a send is refused at once (503 `overloaded`, Retry-After) instead of hanging.
WORKER_CONCURRENCY = 100
GENERATION_QUEUE_LIMIT = 100
# Each user's share (429 beyond it, nothing stored): answers in flight at once, and new answers
# per window; keep the first well below the slots divided by the users chatting at once.
USER_MAX_ACTIVE_GENERATIONS = 4
RATELIMIT_SEND_PER_USER = "30/60"
# Longest an answer may run (seconds); a longer one ends `failed` (`too_long`), text kept.
GENERATION_MAX_SECONDS = 600

# Uploads shared by every web and worker process: an S3-compatible store (or keep "local" with
# UPLOAD_FOLDER on a shared volume). Give the credentials here, not as AWS_* variables: workers
# remove those from their environment.
# UPLOAD_STORAGE = "s3"
# UPLOAD_S3_BUCKET = "bestchat-uploads"
# UPLOAD_S3_ENDPOINT_URL = "https://s3.example.internal"
# UPLOAD_S3_ACCESS_KEY_ID = "..."
# UPLOAD_S3_SECRET_ACCESS_KEY = "..."
UPLOAD_MAX_BYTES = 20 * 1024 * 1024

# Long conversations: the strategies run in order when a conversation chooses none.
CONTEXT_STRATEGIES = ["compress", "summarize", "truncate"]

# Billing through Stripe (docs/billing.md): both secrets set turn it on. Set them as
# BESTCHAT_STRIPE_SECRET_KEY and BESTCHAT_STRIPE_WEBHOOK_SECRET in the environment rather
# than here. The webhook endpoint to create in Stripe's dashboard is
# https://chat.example.com/api/v1/billing/webhook.
# STRIPE_SECRET_KEY = None
# STRIPE_WEBHOOK_SECRET = None
# Where Stripe sends users back after Checkout and the billing portal.
# BILLING_PUBLIC_URL = "https://chat.example.com"
