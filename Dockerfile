# Lykta: build a virtual environment, then run it as a non-root user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/lykta
WORKDIR /src
# The exact, hash-checked set first (requirements/prod.txt, `make lock`), then Lykta alone.
COPY requirements/prod.txt ./requirements/
RUN /opt/lykta/bin/pip install --require-hashes -r requirements/prod.txt
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/lykta/bin/pip install --no-deps .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /srv/lykta --shell /usr/sbin/nologin lykta
COPY --from=build /opt/lykta /opt/lykta
WORKDIR /srv/lykta
COPY alembic.ini ./
COPY migrations ./migrations
COPY widget ./widget
COPY config ./config
ENV PATH=/opt/lykta/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LYKTA_ENVIRONMENT=production \
    LYKTA_HOST=0.0.0.0 \
    LYKTA_PORT=8000
USER lykta
EXPOSE 8000
# Migrations first, then the server; settings come from LYKTA_* variables.
CMD ["lykta", "serve", "--migrate"]
