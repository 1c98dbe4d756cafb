def test_register_login_me(client):
    client.signup("bob@example.com", "correct horse battery")
    r = client.get("/api/v1/me")
    assert r.status_code == 200 and r.get_json()["user"]["email"] == "bob@example.com"
