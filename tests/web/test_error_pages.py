import pytest


@pytest.mark.django_db
def test_an_oversized_post_gets_a_page_that_says_nothing_was_saved(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/accounts/signup/", {"username": "x" * 4096})
    assert response.status_code == 400
    assert b"This request could not be accepted" in response.content
    assert b"Nothing was saved." in response.content


@pytest.mark.django_db
def test_an_unknown_address_gets_a_plain_not_found_page(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert (
        b"There is nothing at this address, or it belongs to another account." in response.content
    )
