#!/usr/bin/python3
"""validate.py: check an iotguard message against its JSON Schema.

Why this exists: the integration tests, the docs and anyone writing a
third-party client need one way to ask "is this message well formed?"
that uses exactly the schemas shipped in schema/.

    /usr/bin/python3 schema/validate.py status < message.json
    echo '{"type":"ping"}' | schema/validate.py ch-request.schema.json

Exit status: 0 valid, 1 invalid (one line per problem on stderr), 2 usage
error or input that is not JSON. As a module:

    from validate import validate, errors
    validate("status", obj)      # raises jsonschema.ValidationError
    errors("status", obj)        # list of problem strings, [] if valid

Needs Debian's python3-jsonschema (run with /usr/bin/python3).
"""
import functools
import json
import os
import sys

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
SUFFIX = ".schema.json"


def schema_names():
    """Names of the schemas in this directory, without the suffix."""
    return sorted(f[: -len(SUFFIX)] for f in os.listdir(SCHEMA_DIR) if f.endswith(SUFFIX))


def _normalise(name):
    base = os.path.basename(name)
    if base.endswith(SUFFIX):
        base = base[: -len(SUFFIX)]
    elif base.endswith(".json"):
        base = base[: -len(".json")]
    if base not in schema_names():
        raise KeyError(f"no schema named {name!r}; known: {', '.join(schema_names())}")
    return base


@functools.lru_cache(maxsize=None)
def validator(name):
    """A Draft 2020-12 validator (with format checking) for schema `name`."""
    base = _normalise(name)
    with open(os.path.join(SCHEMA_DIR, base + SUFFIX), encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _describe(err):
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    # jsonschema repeats the whole instance in oneOf messages; say it shortly.
    message = "matches none of the allowed forms" if err.validator == "oneOf" else err.message
    text = f"{where}: {message}"
    # oneOf failures hide the useful detail in the sub-errors: show the
    # closest branch's problems (the one that failed least deep).
    if err.context:
        best = sorted(err.context, key=lambda e: (-len(e.absolute_path), len(e.schema_path)))[:3]
        text += "; " + "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in best
        )
    return text


def errors(name, obj):
    """List of problems with obj against schema `name`; empty when valid."""
    v = validator(name)
    return [_describe(e) for e in sorted(v.iter_errors(obj), key=lambda e: list(e.path))]


def validate(name, obj):
    """Raises jsonschema.ValidationError if obj does not match schema `name`."""
    v = validator(name)
    err = jsonschema.exceptions.best_match(v.iter_errors(obj))
    if err is not None:
        raise err


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(f"usage: {os.path.basename(argv[0])} SCHEMA_NAME < message.json\n"
              f"schemas: {', '.join(schema_names())}", file=sys.stderr)
        return 2 if len(argv) != 2 else 0
    try:
        validator(argv[1])
    except KeyError as e:
        print(f"validate.py: {e.args[0]}", file=sys.stderr)
        return 2
    try:
        obj = json.load(sys.stdin)
    except ValueError as e:
        print(f"validate.py: input is not JSON: {e}", file=sys.stderr)
        return 2
    problems = errors(argv[1], obj)
    for p in problems:
        print(f"invalid: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
