# One image for every PGI process: web (gunicorn), worker and beat (Celery), relay and consumer;
# docker-compose.yml and deploy/kubernetes/ choose the command.
# Static files are collected at build time and served by whitenoise.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=pgi.settings \
    PGI_VAR_DIR=/app/var

WORKDIR /app

# Requirements first, so that a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs no database or broker: settings only read the environment.
# The user has fixed ids (10001) so that Kubernetes can check runAsNonRoot against them
# (deploy/kubernetes/ names the same ids).
RUN python manage.py collectstatic --noinput -v0 \
    && groupadd --system --gid 10001 pgi \
    && useradd --system --uid 10001 --gid pgi --no-create-home --home-dir /app pgi \
    && chown -R pgi:pgi /app/var

USER 10001:10001
EXPOSE 8000

# Workers, threads, timeouts and request limits: gunicorn.conf.py (docs/04-operations.md).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "pgi.wsgi"]
