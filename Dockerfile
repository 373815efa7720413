# ctiwatch: one image for the central service (`ctiwatch run`) and the probe agent
# (`ctiwatch agent`). docker-compose.yml mounts the configuration at /etc/ctiwatch/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The project's own packages (pyproject.toml pins every dependency).
COPY pyproject.toml README.md ./
COPY ctiwatch ./ctiwatch
COPY sla ./sla
COPY classifier ./classifier
COPY incidents ./incidents
COPY alerting ./alerting
COPY pipeline ./pipeline
COPY probes ./probes
RUN pip install . && rm -rf /src

# A system user without a shell; its home holds the working directory (SQLite, if used).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/ctiwatch \
        --shell /usr/sbin/nologin ctiwatch
# The default configuration of the container; docker-compose.yml mounts its own over it.
COPY config/docker.yaml /etc/ctiwatch/ctiwatch.yaml
USER ctiwatch
WORKDIR /var/lib/ctiwatch

# 8080: status page, console, API, Twilio webhooks, /healthz, /metrics. 8081: the simulator.
EXPOSE 8080 8081

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["ctiwatch"]
CMD ["run", "--config", "/etc/ctiwatch/ctiwatch.yaml"]
