# One image for both roles: `securemsg serve --no-worker` (gateway) and `securemsg worker` (dispatcher).

# The wheel is built in its own stage, so the image holds the installed package (pages, static files and
# email templates are package data) and no source tree.
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY inbox inbox
COPY push push
COPY mailer mailer
COPY portal_links portal_links
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The exact dependency versions, each file checked against its hash; then securemsg itself with --no-deps.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && useradd --system --home /app securemsg && mkdir -p /app/var && chown securemsg /app/var
WORKDIR /app
USER securemsg
EXPOSE 8080
CMD ["securemsg", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-worker"]
