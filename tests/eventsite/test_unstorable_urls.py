"""A NUL character in a page's URL is a 400 on both backends (PostgreSQL refused it with a 500)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("param", ["event", "exclude", "resource", "related", "label", "q"])
def test_a_nul_in_a_feed_filter_is_a_400(admin_client, param):
    response = admin_client.get("/events/", {param: "acme\x00order"})

    assert response.status_code == 400


def test_a_nul_in_a_page_path_is_a_400(admin_client):
    assert admin_client.get("/resources/acme%00thing/").status_code == 400


def test_the_feed_without_nul_still_answers(admin_client):
    assert admin_client.get("/events/", {"event": "acme.order"}).status_code == 200
