"""Reading one JSON document that our tools wrote (labels.json, split.json): a file that is
missing, not UTF-8 or not JSON raises ValueError naming the file and, where JSON says, the line
and column. The readers of each format check its contents."""

import json
from pathlib import Path


def read_json_document(path: Path | str):
    """The parsed content of the JSON file at `path`; ValueError naming the file and reason."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file is missing") from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from None
