# The datagc image: the Kubernetes sidecar and CronJob of contrib/k8s/, or `docker run` beside a volume.
#
#   docker build -t datagc:0.1.0 .
#   docker run --rm -v app-data:/data -e DATAGC_DATA_DIR=/data datagc:0.1.0 audit
#
# Python 3.11 is the version the test suite runs on. pip installs this checkout and its pinned-range dependencies
# (all pure Python or manylinux wheels: no compiler in the image). The user is numeric so that Kubernetes'
# runAsNonRoot can check it; the root filesystem can be read-only (no .pyc written, no cache, nothing in /tmp).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATAGC_DATA_DIR=/data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY datagc ./datagc
RUN pip install --no-cache-dir . \
    && rm -rf /src \
    && groupadd --system --gid 10001 datagc \
    && useradd --system --uid 10001 --gid datagc --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin datagc

WORKDIR /
USER 10001:10001
ENTRYPOINT ["datagc"]
CMD ["--help"]
