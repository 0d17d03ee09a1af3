"""test_note_py.py: the independent note/cosignature code against the C2SP
texts' own examples, and its strictness.

Why this exists: note.py computes the vectors the C tests pin, so it must
itself be right: it is checked here against the signed-note spec's example
(a vkey and the note it verifies) and against tampering.
Run: /usr/bin/python3 -m pytest -q tests/tlog/test_note_py.py
"""

import base64
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import note  # noqa: E402

# signed-note.md, "Verifier keys" / "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_spec_example_vkey_verifies_spec_example_note():
    v = note.parse_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo" and v.type == note.TYPE_ED25519
    assert v.id.hex() == "530d903a"
    assert v.vkey() == SPEC_VKEY
    text, seen = note.verify_note(SPEC_NOTE, [v])
    assert text == "This is an example message.\n"
    assert seen == {"example.com/foo": None}


def test_spec_example_note_tampered_is_refused():
    v = note.parse_vkey(SPEC_VKEY)
    with pytest.raises(note.NoteError):
        note.verify_note(SPEC_NOTE.replace("example message", "example massage"), [v])


def test_vkey_strictness():
    v = note.parse_vkey(SPEC_VKEY)
    bad = [
        SPEC_VKEY.replace("530d903a", "530D903A"),         # hex must be lowercase
        SPEC_VKEY.replace("530d903a", "530d903b"),         # id does not match the key
        SPEC_VKEY + "+x",                                  # four parts
        SPEC_VKEY[:-1],                                    # not base64 of 33 bytes
        "example com+530d903a+" + SPEC_VKEY.split("+")[2],  # space in the name
    ]
    for b in bad:
        with pytest.raises(note.NoteError):
            note.parse_vkey(b)
    # the same key as a cosigner (type 0x04) has another key id
    w = note.Verifier(v.name, note.TYPE_COSIG_V1, v.pk)
    assert w.id != v.id
    assert note.parse_vkey(w.vkey()).id == w.id


def test_ch_vkey_matches_ledger_md_section_12():
    assert note.vectors()["ch_vkey"] == "iotguard/demo+5c587613+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"


def test_cosigned_checkpoint_verifies_with_quorum():
    v = note.vectors()
    ch = note.parse_vkey(v["ch_vkey"])
    ws = [note.parse_vkey(w["vkey"]) for w in v["witnesses"]]
    origin, size, root, cos = note.verify_checkpoint(v["cosigned"], ch, ws, quorum=2)
    assert (origin, size) == ("iotguard/demo", 3)
    assert root.hex() == "84706b1b7a1fbbf31865f7949f0b440d814e99bc77c200c9aa4e850f10ab7fcd"
    assert cos == {"iotguard-witness/w1": note.VEC_TIME, "iotguard-witness/w2": note.VEC_TIME}
    # without the cosignatures the quorum fails, and the CH signature alone still verifies
    with pytest.raises(note.NoteError):
        note.verify_checkpoint(note.VEC_CHECKPOINT, ch, ws, quorum=1)
    assert note.verify_checkpoint(note.VEC_CHECKPOINT, ch, ws, quorum=0)[3] == {}


def test_cosignature_bytes_are_key_id_time_signature():
    v = note.vectors()
    w = v["witnesses"][0]
    blob = base64.b64decode(w["line"].split(" ")[2])
    assert len(blob) == 76
    assert blob[:4].hex() == w["key_id"]
    assert struct.unpack(">Q", blob[4:12])[0] == note.VEC_TIME
    assert v["message"].startswith("cosignature/v1\ntime 1700000000\niotguard/demo\n3\n")


def test_cosignature_of_another_time_or_checkpoint_fails():
    v = note.vectors()
    ch = note.parse_vkey(v["ch_vkey"])
    w = note.parse_vkey(v["witnesses"][0]["vkey"])
    line = v["witnesses"][0]["line"]
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # timestamp + 1: the signature covers the time line
    forged = note.VEC_CHECKPOINT + "%s %s %s\n" % (note.EM_DASH, w.name, base64.b64encode(bytes(blob)).decode())
    with pytest.raises(note.NoteError):
        note.verify_checkpoint(forged, ch, [w])
    # a known key's bad line rejects the note even with a quorum of 0
    with pytest.raises(note.NoteError):
        note.verify_checkpoint(forged, ch, [w], quorum=0)
    # the same line moved onto a checkpoint of another size does not verify
    other = note.VEC_CHECKPOINT.replace("\n3\n", "\n4\n", 1)
    with pytest.raises(note.NoteError):
        note.verify_note(other + line, [w])


def test_unknown_witness_lines_are_ignored():
    v = note.vectors()
    ch = note.parse_vkey(v["ch_vkey"])
    w2 = note.parse_vkey(v["witnesses"][1]["vkey"])
    # w1's line is present but w1 is not trusted: only w2 counts
    assert set(note.verify_checkpoint(v["cosigned"], ch, [w2], quorum=1)[3]) == {"iotguard-witness/w2"}


def test_add_checkpoint_request_round_trip():
    proof = [bytes([i]) * 32 for i in range(3)]
    body = note.add_checkpoint_request(2, proof, note.VEC_CHECKPOINT)
    assert body.startswith("old 2\nAAAA")
    assert note.parse_add_checkpoint_request(body) == (2, proof, note.VEC_CHECKPOINT)
    for bad in ["old 02\n\n" + note.VEC_CHECKPOINT, "old -1\n\n", "old 1\nAAAA\n\n", "new 1\n\n"]:
        with pytest.raises(note.NoteError):
            note.parse_add_checkpoint_request(bad)


def test_documented_first_request():
    # docs/LEDGER.md 15.5: "old 0", an empty line, the checkpoint; the
    # witness w1's answer at 1700000000 is its vector line.
    req = "old 0\n\n" + note.VEC_CHECKPOINT
    assert note.add_checkpoint_request(0, [], note.VEC_CHECKPOINT) == req
    old, proof, cp = note.parse_add_checkpoint_request(req)
    assert (old, proof, cp) == (0, [], note.VEC_CHECKPOINT)
    v = note.vectors()
    w1 = v["witnesses"][0]
    text, _ = note.split_note(cp)
    assert note.cosign(note.seed_of(0x40), "iotguard-witness/w1", 1700000000, text.encode()) == w1["line"]
