"""One reader of our JSON documents: labels.json and split.json refuse a broken file alike."""

import pytest

from plugins.speaker_rec.json_document import read_json_document
from plugins.speaker_rec.labelfile import read_labels_json
from tools.sr.split_manifest import read_split


@pytest.mark.parametrize("reader", [read_json_document, read_labels_json, read_split])
def test_a_broken_document_names_the_file_and_reason(tmp_path, reader):
    with pytest.raises(ValueError, match=r"missing\.json: file is missing$"):
        reader(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "format": 1,\n}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: malformed JSON: .* at line 3 column 1$"):
        reader(broken)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.json: malformed JSON \('utf-8' codec"):
        reader(latin)


def test_a_readable_document_is_returned_as_parsed(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"a": [1, 2.5, null]}', encoding="utf-8")
    assert read_json_document(path) == {"a": [1, 2.5, None]}
