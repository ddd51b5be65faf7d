"""A `papersim serve` started with an API key, driven by the clients people
already use: with the right key openai's and huggingface_hub's calls work;
with a wrong or missing key each raises its library's authentication error
(openai.AuthenticationError; huggingface_hub's HfHubHTTPError with status
401), and raw requests get the 401 body of each dialect. Usage:
auth.py http://127.0.0.1:PORT KEY

Every check is an assert; the last line printed is a JSON summary."""

import json
import os
import sys
import urllib.error
import urllib.request

# No Hugging Face token of the machine's may be sent instead of ours.
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"

import openai  # noqa: E402
from huggingface_hub import InferenceClient  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402

URL = sys.argv[1].rstrip("/")
KEY = sys.argv[2]
WRONG = "0" * len(KEY)
DIM = 384
summary = {}


def raw(method, path, body=None, key=None):
    """(status, headers, JSON body) of one request, with `key` if given."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.load(e)


# --- openai -----------------------------------------------------------------
ok = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
got = ok.embeddings.create(model="x", input=["graph neural networks", "protein folding"])
assert len(got.data) == 2 and len(got.data[0].embedding) == DIM
assert [m.id for m in ok.models.list()] == ["sentence-transformers/all-MiniLM-L6-v2"]

# The openai client always sends a key (it refuses to start without one):
# "missing" is the placeholder people give it for a keyless local server.
for name, key in (("wrong", WRONG), ("missing", "not-needed")):
    client = openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0)
    try:
        client.embeddings.create(model="x", input="graph neural networks")
        raise AssertionError(f"a {name} key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e
        assert e.code == "invalid_api_key", e.body
        assert KEY not in str(e)
        summary[f"openai_{name}"] = type(e).__name__

# --- huggingface_hub, as against a TEI url ----------------------------------
hf = InferenceClient(model=URL, api_key=KEY)
fe = hf.feature_extraction("graph neural networks")
assert fe.shape[-1] == DIM, fe.shape
sims = hf.sentence_similarity(
    "graph neural networks for molecules",
    other_sentences=["message passing networks on molecular graphs", "a survey of galaxy surveys"],
)
assert len(sims) == 2 and sims[0] > sims[1], sims

for name, client in (("wrong", InferenceClient(model=URL, api_key=WRONG)), ("missing", InferenceClient(model=URL))):
    try:
        client.feature_extraction("graph neural networks")
        raise AssertionError(f"a {name} key was accepted")
    except HfHubHTTPError as e:
        assert e.response.status_code == 401, e
        assert "key" in str(e), e
        summary[f"hf_{name}"] = f"{type(e).__name__} {e.response.status_code}"

# --- each dialect's 401 body, and what stays open ---------------------------
status, headers, body = raw("POST", "/embed", {"inputs": "x"})
assert status == 401 and body["error_type"] == "Unauthorized", body  # TEI
assert headers["WWW-Authenticate"] == "Bearer", dict(headers)
status, _, body = raw("POST", "/v1/embeddings", {"input": "x"}, key=WRONG)
assert status == 401 and body["error"]["type"] == "invalid_request_error", body  # OpenAI
assert body["error"]["code"] == "invalid_api_key", body
status, _, body = raw("POST", "/search", {"query": "x"}, key=WRONG)
assert status == 401 and body["error_type"] == "Unauthorized" and body["field"] is None, body  # papersim
for path in ("/info", "/v1/models", "/papers/x"):
    status, _, _ = raw("GET", path)
    assert status == 401, (path, status)
try:
    urllib.request.urlopen(URL + "/metrics")  # Prometheus text, not JSON
    raise AssertionError("/metrics answered without a key")
except urllib.error.HTTPError as e:
    assert e.code == 401
status, _, body = raw("GET", "/health")
assert status == 200 and body["status"] == "ok", body
status, _, body = raw("POST", "/search", {"query": "graph neural networks", "k": 3}, key=KEY)
assert status == 200 and len(body["results"]) == 3, body

metrics = urllib.request.urlopen(
    urllib.request.Request(URL + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
).read().decode()
refused = [line for line in metrics.splitlines() if line.startswith('papersim_rejected_total{reason="unauthorized"}')]
assert refused and int(float(refused[0].split()[-1])) >= 10, refused
summary["unauthorized_counted"] = int(float(refused[0].split()[-1]))
print(json.dumps(summary))
