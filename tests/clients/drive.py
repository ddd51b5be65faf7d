"""Drives a running `papersim serve` with the clients people already use:
openai's Python client and huggingface_hub's InferenceClient (as it calls a
text-embeddings-inference server). Usage: drive.py http://127.0.0.1:PORT

Every check is an assert; the last line printed is a JSON summary."""

import json
import math
import sys
import urllib.request

import openai
from huggingface_hub import InferenceClient

URL = sys.argv[1].rstrip("/")
NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
LONG = "graph neural networks " * 2000  # far past the model's 256 tokens


def status_of(err):
    """The HTTP status a client exception carries, whatever its version."""
    for attr in ("status_code",):
        if isinstance(getattr(err, attr, None), int):
            return getattr(err, attr)
    resp = getattr(err, "response", None)
    return getattr(resp, "status_code", None)


def unit(v):
    return abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-3


def cos(a, b):
    return sum(x * y for x, y in zip(a, b))


summary = {}

# --- openai -----------------------------------------------------------------
oa = openai.OpenAI(base_url=URL + "/v1", api_key="not-needed", max_retries=0)

one = oa.embeddings.create(model=NAME, input="graph neural networks for molecules")
assert len(one.data) == 1 and len(one.data[0].embedding) == DIM, one
assert unit(one.data[0].embedding)
assert one.model == NAME, one.model
assert one.usage.prompt_tokens > 0

batch = oa.embeddings.create(
    model="text-embedding-3-small",
    input=["protein structure prediction", "graph neural networks for molecules", "x"],
)
assert [d.index for d in batch.data] == [0, 1, 2]
assert batch.model == "text-embedding-3-small", batch.model  # echoed as asked
assert cos(batch.data[1].embedding, one.data[0].embedding) > 0.9999

models = oa.models.list()
ids = [m.id for m in models]
assert ids == [NAME], ids
assert all(m.object == "model" and isinstance(m.created, int) for m in models)

# The retrieve-model endpoint, whose path the client builds from the id (the
# hub id's slash included).
m = oa.models.retrieve(NAME)
assert m.id == NAME and m.object == "model" and m.owned_by == "papersim", m
assert isinstance(m.created, int), m
try:
    oa.models.retrieve("org/no-such-model")
    raise AssertionError("an unknown model was retrieved")
except openai.NotFoundError as e:
    assert e.status_code == 404, e
    assert "org/no-such-model" in str(e), e
    summary["openai_retrieve_unknown"] = e.status_code

long = oa.embeddings.create(model=NAME, input=LONG)  # truncated, as OpenAI-style servers do
assert len(long.data[0].embedding) == DIM and unit(long.data[0].embedding)

try:
    oa.embeddings.create(model=NAME, input=[])
    raise AssertionError("an empty input list was accepted")
except openai.APIStatusError as e:
    assert 400 <= e.status_code < 500, e
    summary["openai_bad_request"] = e.status_code

# --- huggingface_hub, as against a TEI url ----------------------------------
hf = InferenceClient(model=URL)

fe = hf.feature_extraction("graph neural networks for molecules")
assert fe.shape[-1] == DIM, fe.shape
row = [float(x) for x in fe.reshape(-1)[:DIM]]
assert cos(row, one.data[0].embedding) > 0.9999

sims = hf.sentence_similarity(
    "graph neural networks for molecules",
    other_sentences=["message passing networks on molecular graphs", "a survey of galaxy surveys"],
)
assert len(sims) == 2 and sims[0] > sims[1], sims
assert all(-1.0 <= s <= 1.0 for s in sims)

fe_long = hf.feature_extraction(LONG)  # truncated by default
assert fe_long.shape[-1] == DIM
try:
    hf.feature_extraction(LONG, truncate=False)
    raise AssertionError("an over-long input with truncate=false was accepted")
except Exception as e:  # HfHubHTTPError; its module moved between versions
    assert status_of(e) == 413, (type(e), e)
    summary["hf_too_long"] = status_of(e)
# all-MiniLM-L6-v2 has no prompts: a prompt_name is refused, naming the field.
try:
    hf.feature_extraction("x", prompt_name="query")
    raise AssertionError("a prompt_name the model lacks was accepted")
except Exception as e:
    assert status_of(e) == 422, (type(e), e)
    summary["hf_unknown_prompt"] = status_of(e)
try:
    hf.feature_extraction("x", normalize=False)
    raise AssertionError("normalize=false was accepted")
except Exception as e:
    assert status_of(e) == 422, (type(e), e)
    summary["hf_bad_request"] = status_of(e)

# --- TEI's /info and /tokenize, as its clients read them --------------------
info = json.load(urllib.request.urlopen(URL + "/info"))
assert info["model_id"] == NAME, info["model_id"]
assert info["max_input_length"] == 256
for k in ("model_dtype", "max_batch_tokens", "max_client_batch_size", "version"):
    assert k in info, k
req = urllib.request.Request(
    URL + "/tokenize",
    data=json.dumps({"inputs": "graph networks"}).encode(),
    headers={"Content-Type": "application/json"},
)
toks = json.load(urllib.request.urlopen(req))
assert len(toks) == 1 and toks[0][0]["special"] and toks[0][0]["text"] == "[CLS]", toks
words = [t["text"] for t in toks[0] if not t["special"]]
assert words == ["graph", "networks"], words
assert toks[0][1]["start"] == 0 and toks[0][1]["stop"] == 5

summary.update(
    openai=openai.__version__,
    huggingface_hub=__import__("huggingface_hub").__version__,
    similarity=[round(s, 4) for s in sims],
)
print(json.dumps(summary))
