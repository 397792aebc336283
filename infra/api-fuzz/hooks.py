"""Schemathesis hooks for infra/api-fuzz/run.sh (loaded through SCHEMATHESIS_HOOKS).

`POST /v1/sync/accounts` reads `application/x-ndjson` (one `AccountInput` JSON object per
line), a media type Schemathesis has no serializer for. The document describes that body as
a string (its lines); this writes a generated string as it is and anything else (the
negative cases: a number, an array, an object...) as one line of JSON, all UTF-8.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return (json.dumps(value) + "\n").encode("utf-8", "surrogatepass")
