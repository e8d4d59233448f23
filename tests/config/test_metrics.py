"""Prometheus metrics at /metrics."""


def test_metrics_are_exported_in_prometheus_format(client, db):
    client.get("/health/live")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"django_http_requests_total_by_view_transport_method_total" in response.content


def test_metrics_need_the_bearer_token_when_one_is_set(client, db, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert response.status_code == 200
