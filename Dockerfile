# One image for both roles: `securemsg serve --no-worker` (gateway) and `securemsg worker` (dispatcher).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY inbox inbox
COPY push push
COPY mailer mailer
COPY portal_links portal_links
COPY templates templates
# Installed in place (-e) so templates/ beside the packages is found where the code looks for it.
RUN pip install -e . && useradd --system --home /app securemsg && mkdir -p /app/var && chown securemsg /app/var
USER securemsg
EXPOSE 8080
CMD ["securemsg", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-worker"]
