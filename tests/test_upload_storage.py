"""The upload storages: the local one (keys, atomic writes, deletes) and the S3 one against
moto's S3-compatible server on loopback (never a real AWS endpoint: fake credentials and an
explicit endpoint URL), directly and through the REST API on both database backends."""

from __future__ import annotations

import io
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bestchat.settings import ConfigurationError
from bestchat.uploads.storage import LocalStorage, S3Storage, get_storage, new_key, storage_from_config
from tests import upload_files as files
from tests.test_uploads import created, row, row_count, stored_files, upload

API = "/api/v1"
BUCKET = "bestchat-test"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


# ---- local -----------------------------------------------------------------------------------

def test_local_storage_round_trip(tmp_path):
    storage = LocalStorage(tmp_path / "uploads")
    key = new_key()
    storage.save(key, io.BytesIO(b"hello bytes"))
    assert storage.read(key) == b"hello bytes"
    with storage.open(key) as stream:
        assert stream.read(5) == b"hello"
    assert storage.path(key) == tmp_path / "uploads" / key[:2] / key
    assert oct(storage.path(key).stat().st_mode & 0o777) == "0o600"
    storage.delete(key)
    storage.delete(key)  # already gone: no error
    with pytest.raises(FileNotFoundError):
        storage.open(key)
    with pytest.raises(FileNotFoundError):
        storage.read(key)


@pytest.mark.parametrize("key", ["../../etc/passwd", "", "ABCDEF" * 6, "a" * 31, "a" * 32 + "/x", None])
def test_local_storage_refuses_keys_it_did_not_make(tmp_path, key):
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError):
        storage.save(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        storage.delete(key)


class Failing(io.RawIOBase):
    """A file that breaks after its first chunk (a client gone mid-upload)."""

    def __init__(self):
        self.calls = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        self.calls += 1
        if self.calls > 1:
            raise OSError("connection lost")
        buffer[:4] = b"part"
        return 4


def test_a_failed_local_save_leaves_no_file_and_no_temporary(tmp_path):
    storage = LocalStorage(tmp_path)
    key = new_key()
    with pytest.raises(OSError):
        storage.save(key, Failing())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_storage_is_chosen_from_the_settings(tmp_path):
    assert isinstance(storage_from_config({"UPLOAD_STORAGE": "local", "UPLOAD_FOLDER": str(tmp_path)}), LocalStorage)
    with pytest.raises(ConfigurationError, match="UPLOAD_S3_BUCKET"):
        storage_from_config({"UPLOAD_STORAGE": "s3", "UPLOAD_FOLDER": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="'local' or 's3'"):
        storage_from_config({"UPLOAD_STORAGE": "ftp", "UPLOAD_FOLDER": str(tmp_path)})


# ---- S3 (moto) -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free loopback port, with the test bucket; fake credentials only."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        try:
            s3_client(url).create_bucket(Bucket=BUCKET)
            yield url
        finally:
            server.stop()


def s3_client(url: str):
    assert url.startswith("http://127.0.0.1:")
    return boto3.session.Session().client("s3", endpoint_url=url, region_name="us-east-1",
                                          aws_access_key_id="testing", aws_secret_access_key="testing")


def s3_settings(url: str, prefix: str) -> dict:
    return {"UPLOAD_STORAGE": "s3", "UPLOAD_S3_BUCKET": BUCKET, "UPLOAD_S3_ENDPOINT_URL": url,
            "UPLOAD_S3_REGION": "us-east-1", "UPLOAD_S3_ACCESS_KEY_ID": "testing",
            "UPLOAD_S3_SECRET_ACCESS_KEY": "testing", "UPLOAD_S3_PREFIX": prefix}


def objects(url: str, prefix: str) -> dict[str, int]:
    listed = s3_client(url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in listed.get("Contents", [])}


def test_s3_storage_round_trip(s3_server):
    prefix = f"direct-{uuid.uuid4().hex[:8]}/"
    storage = storage_from_config(s3_settings(s3_server, prefix))
    assert isinstance(storage, S3Storage)
    key = new_key()
    storage.save(key, io.BytesIO(b"to the bucket"))
    assert objects(s3_server, prefix) == {prefix + key: 13}
    assert storage.read(key) == b"to the bucket"
    stream = storage.open(key)
    assert stream.read(2) == b"to"
    stream.close()
    storage.delete(key)
    storage.delete(key)  # already gone: no error
    assert objects(s3_server, prefix) == {}
    with pytest.raises(FileNotFoundError):
        storage.open(key)


def test_a_big_s3_save_streams_in_parts(s3_server):
    """Past the multipart threshold (8 MiB) the file goes up in parts, read from the file as
    they are sent."""
    prefix = f"big-{uuid.uuid4().hex[:8]}/"
    storage = storage_from_config(s3_settings(s3_server, prefix))
    key = new_key()
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB
    storage.save(key, io.BytesIO(data))
    assert objects(s3_server, prefix) == {prefix + key: len(data)}
    assert storage.read(key) == data
    storage.delete(key)


@pytest.fixture
def s3_prefix():
    return f"app-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def app_config(s3_server, s3_prefix):
    """The app of the API tests below stores uploads in moto's bucket."""
    return s3_settings(s3_server, s3_prefix)


def test_uploads_in_s3_mode_round_trip_through_the_api(app, client, user, s3_server, s3_prefix):
    assert isinstance(get_storage(app), S3Storage)
    data = files.pdf_with_text("Stored in S3")
    body = created(client, data, "s3.pdf")
    key = row(app, body["id"]).storage_key
    assert objects(s3_server, s3_prefix) == {s3_prefix + key: len(data)}
    assert "Stored in S3" in row(app, body["id"]).text
    content = client.get(f"{API}/uploads/{body['id']}/content")
    assert content.status_code == 200 and content.data == data
    assert content.headers["Content-Type"] == "application/pdf"
    # the same bytes again: the same upload, nothing new in the bucket
    assert upload(client, data, "again.pdf").status_code == 200
    assert len(objects(s3_server, s3_prefix)) == 1
    # refused uploads put nothing in the bucket (nor on local disk)
    assert upload(client, files.EXE, "x.exe").status_code == 415
    app.config["UPLOAD_MAX_BYTES"] = 100
    assert upload(client, b"z" * 101, "big.txt").status_code == 413
    assert len(objects(s3_server, s3_prefix)) == 1 and stored_files(app) == []
    assert client.delete(f"{API}/uploads/{body['id']}").status_code == 204
    assert objects(s3_server, s3_prefix) == {}


def test_account_deletion_in_s3_mode_removes_the_objects(app, client, user, s3_server, s3_prefix):
    created(client, b"first", "a.txt")
    created(client, files.PNG, "b.png")
    assert len(objects(s3_server, s3_prefix)) == 2
    assert client.delete(f"{API}/me", {"password": "correct horse battery"}).status_code == 204
    assert row_count(app) == 0
    assert objects(s3_server, s3_prefix) == {}


def test_content_of_an_object_gone_from_the_bucket_is_404(app, client, user, s3_server, s3_prefix):
    body = created(client, b"vanishing", "v.txt")
    s3_client(s3_server).delete_object(Bucket=BUCKET, Key=s3_prefix + row(app, body["id"]).storage_key)
    response = client.get(f"{API}/uploads/{body['id']}/content")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
