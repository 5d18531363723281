# Live Talk: the relay and its page, served by gunicorn on $PORT (Cloud Run sets it).
FROM python:3.11-slim

# Unbuffered stdout keeps JSON log lines whole and timely; no .pyc files in a read-only app dir.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080

WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir --requirement requirements.txt

# The code stays owned by root, so the service cannot rewrite itself.
COPY . ./

# An unprivileged user without a login shell; numeric below so runAsNonRoot checks can verify
# it. It may write only its home and DATA_DIR (local storage when no bucket is configured).
RUN groupadd --system --gid 10001 livetalk \
    && useradd --system --uid 10001 --gid livetalk --create-home --home-dir /home/livetalk \
       --shell /usr/sbin/nologin livetalk \
    && install --directory --owner=livetalk --group=livetalk --mode=0750 /var/lib/livetalk
ENV DATA_DIR=/var/lib/livetalk
USER 10001:10001

EXPOSE 8080

# Exec form: gunicorn is PID 1 and receives Cloud Run's SIGTERM itself (graceful_timeout 8 s
# in gunicorn.conf.py, under Cloud Run's 10 s); it reads $PORT there, so no shell is needed.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
