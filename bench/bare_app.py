"""The ceiling of our stack: a bare FastAPI route returning a constant ExternalMetricValueList,
served by the same uvicorn with the same TLS settings as the adapter."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Response

BODY = (
    b'{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",'
    b'"metadata":{},"items":[{"metricName":"s0-cron","metricLabels":null,'
    b'"timestamp":"2026-11-22T08:30:00Z","value":"5"}]}'
)

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}")
async def constant(namespace: str, metric: str, labelSelector: str | None = None) -> Response:
    return Response(BODY, media_type="application/json")


if __name__ == "__main__":
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_keep_alive=90,
    )
