# openpanel-lite: one image, one process, data in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md openpanel.toml THIRD_PARTY.md ./
COPY openpanel_lite ./openpanel_lite
COPY web ./web
RUN pip install . \
    && useradd --system --uid 10001 --create-home openpanel \
    && mkdir -p /data \
    && chown openpanel:openpanel /data

USER openpanel
WORKDIR /home/openpanel
VOLUME /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"
CMD ["openpanel", "serve", "--host", "0.0.0.0", "--data-dir", "/data"]
