#!/usr/bin/python3
"""selftest.py: the schemas accept the messages iotguard sends and reject
near misses.

Why this exists: a schema that accepts everything is worse than none. Each
schema gets hand-written messages in the exact formats of the protocol
(they must validate) and mutations of them, each wrong in one way (they
must not). Run with /usr/bin/python3 schema/selftest.py; exits non-zero on
the first disagreement list.
"""
import base64
import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jsonschema import Draft202012Validator  # noqa: E402

import validate  # noqa: E402

HEX64 = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
HEX64B = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
ZERO64 = "0" * 64
ROOT = base64.b64encode(bytes(range(32))).decode()
SIG = base64.b64encode(bytes(range(68))).decode()
CHECKPOINT = f"iotguard/c1\n7\n{ROOT}\n\n\u2014 iotguard/c1 {SIG}\n"
TS = 1716200000123


def with_(obj, **changes):
    out = copy.deepcopy(obj)
    out.update(changes)
    return out


def without(obj, *keys):
    out = copy.deepcopy(obj)
    for k in keys:
        del out[k]
    return out


def nested(obj, path, value, delete=False):
    out = copy.deepcopy(obj)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    if delete:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return out


# ---- status ---------------------------------------------------------------
online = {"id": "dev1", "state": "online", "ts": TS, "seq": 1, "uptime_s": 0}
offline_clean = with_(online, state="offline", seq=9, uptime_s=300)
will = {"id": "dev1", "state": "offline"}
revoked = {"id": "dev1", "state": "revoked", "ts": TS}
online_agent = with_(online, measurement=HEX64, entropy="ok")
KP_STATUS = {"epoch": 1, "ring": 30, "sessions": 2, "relayed": 1, "sent": 9, "received": 8,
             "peers": [{"peer": "dev2", "key": "direct"}, {"peer": "dev3", "key": "path", "via": "dev4"}],
             "drops": {"replayed": 1, "tampered": 2, "bad_mac": 1}}
entropy_failed = with_(online_agent, entropy="failed: repetition count test: 21 identical samples (cutoff 21)")
collector = with_(online_agent, wallet={"coins": 12, "outstanding": 3})
log_ok = with_(online_agent, log={"state": "ok", "size": 42, "enrollment": 3})
log_refused = with_(online_agent, log={"state": "refused", "reason": "fork", "detail": "the cluster head signed "
                                       "two different trees of size 9: the one this device accepted and another"})
STATUS_OK = [online, with_(online, id="A.b_c-9" * 9 + "x"), offline_clean, will, revoked,
             online_agent, entropy_failed, with_(online, measurement=HEX64B), collector,
             with_(online, wallet={"coins": 0, "outstanding": 0}), log_ok, log_refused,
             with_(online, log={"state": "checking"}), with_(online, log={"state": "unavailable"}),
             with_(online, log={"state": "checking", "size": 7}),
             with_(online_agent, battery={"percent": 57, "mains": True}), with_(online, battery={"mains": True}),
             with_(online, battery={"percent": 0, "mains": False}), with_(online, custody={"epochs": [3]}),
             with_(log_ok, battery={"percent": 100, "mains": False}, custody={"epochs": [1, 2], "active": 1}),
             with_(online, kp=KP_STATUS), with_(online, kp=dict(KP_STATUS, epoch=0, ring=0, sessions=0, peers=[],
                                                                 relayed=0, sent=0, received=0, drops={}))]
STATUS_BAD = [
    (without(online, "seq"), "online without seq"),
    (without(online, "ts"), "online without ts"),
    (with_(will, state="online"), "short form is only for offline"),
    (without(revoked, "ts"), "revoked without ts"),
    (with_(revoked, seq=1), "revoked with agent fields"),
    (with_(online, state="sleeping"), "unknown state"),
    (with_(online, id="dev 1"), "space in id"),
    (with_(online, id=""), "empty id"),
    (with_(online, id="x" * 65), "id too long"),
    (with_(online, seq=-1), "negative seq"),
    (with_(online, ts=1.5), "fractional ts"),
    (with_(online, uptime_s="3"), "uptime as string"),
    (with_(online, extra=1), "unknown field"),
    (with_(will, ts=TS), "offline with ts but no seq/uptime_s"),
    ([online], "array"),
    ("online", "string"),
    (with_(online_agent, measurement=HEX64.upper()), "uppercase measurement"),
    (with_(online_agent, measurement=HEX64[:-2]), "short measurement"),
    (with_(online_agent, entropy="bad"), "entropy neither ok nor failed"),
    (with_(online_agent, entropy="failed: "), "failure without a reason"),
    (with_(online_agent, entropy="failed: a\nb"), "control character in the failure"),
    (with_(online_agent, entropy=True), "boolean entropy"),
    (with_(offline_clean, measurement=HEX64), "measurement on an offline status"),
    (with_(will, entropy="ok"), "entropy in the will"),
    (with_(revoked, measurement=HEX64), "measurement on a revoked status"),
    (with_(offline_clean, wallet={"coins": 1, "outstanding": 0}), "wallet on an offline status"),
    (with_(online, wallet={"coins": 1}), "wallet without outstanding"),
    (with_(online, wallet={"coins": -1, "outstanding": 0}), "negative coins"),
    (with_(online, wallet={"coins": 1, "outstanding": 0, "coin": HEX64}), "a coin in the status"),
    (with_(online, wallet=5), "wallet as a number"),
    (with_(online, log={"state": "refused", "reason": "fork"}), "refusal without its detail"),
    (with_(online, log={"state": "ok", "reason": "fork", "detail": "x"}), "a reason on an ok log"),
    (with_(online, log={"state": "refused", "reason": "tampered", "detail": "x"}), "unknown refusal reason"),
    (with_(online, log={"state": "ok", "size": 0}), "log size 0"),
    (with_(online, log={"state": "fine"}), "unknown log state"),
    (with_(offline_clean, log={"state": "ok"}), "log on an offline status"),
    (with_(online, battery={"percent": 57}), "battery without mains"),
    (with_(online, battery={"percent": 101, "mains": False}), "battery over 100%"),
    (with_(online, battery={"percent": 4.5, "mains": False}), "fractional percent"),
    (with_(online, battery={"mains": "yes"}), "mains as a string"),
    (with_(offline_clean, battery={"mains": True}), "battery on an offline status"),
    (with_(online, custody={"epochs": []}), "custody without epochs"),
    (with_(online, custody={"active": 1}), "custody without its epochs list"),
    (with_(online, custody={"epochs": [0]}), "epoch 0"),
    (with_(online, custody={"epochs": [1, 1]}), "an epoch twice"),
    (with_(online, custody={"epochs": [1, 2, 3]}), "more epochs than a holder keeps"),
    (with_(online, custody={"epochs": [1], "share": HEX64}), "a share in the status"),
    (with_(will, custody={"epochs": [1]}), "custody in the will"),
    (with_(offline_clean, kp=KP_STATUS), "kp on an offline status"),
    (with_(online, kp=without(KP_STATUS, "drops")), "kp without its drops"),
    (with_(online, kp=dict(KP_STATUS, drops={"stolen": 1})), "unknown drop reason"),
    (with_(online, kp=dict(KP_STATUS, drops={"replayed": 0})), "a drop counted zero times"),
    (with_(online, kp=dict(KP_STATUS, peers=[{"peer": "dev3", "key": "path"}])), "a path key without its via"),
    (with_(online, kp=dict(KP_STATUS, peers=[{"peer": "dev3", "key": "direct", "via": "dev4"}])),
     "a via on a direct session"),
    (with_(online, kp=dict(KP_STATUS, peers=[{"peer": "dev3", "key": "ring"}])), "unknown key source"),
    (with_(online, kp=dict(KP_STATUS, key=HEX64)), "a key in the kp status"),
    (with_(online, kp=dict(KP_STATUS, ring=1025)), "ring above 1024"),
]

# ---- ledger head ------------------------------------------------------------
head = {"origin": "iotguard/c1", "size": 7, "root": ROOT, "ch_pubkey": HEX64, "checkpoint": CHECKPOINT}
two_sigs = CHECKPOINT + f"\u2014 witness.example {base64.b64encode(bytes(68)).decode()}\n"
# 16 witness cosignatures (tlog-cosignature: key id, u64 time, signature) with
# 128-byte names: the signed-note spec asks verifiers to accept 16 signatures.
cosigned16 = CHECKPOINT + "".join(
    f"\u2014 {('w%02d' % i) * 42}ww {base64.b64encode(bytes(76)).decode()}\n" for i in range(16))
HEAD_OK = [head, with_(head, checkpoint=two_sigs), with_(head, size=1), with_(head, checkpoint=cosigned16),
           with_(head, checkpoint=two_sigs, cosigned=True, witnesses=["w1"])]
HEAD_BAD = [
    (with_(head, size=0), "size 0: genesis always exists"),
    (with_(head, cosigned=False, witnesses=["w1"]), "cosigned is only ever true"),
    (with_(head, cosigned=True), "cosigned without its witnesses"),
    (with_(head, witnesses=["w1"]), "witnesses without cosigned"),
    (with_(head, cosigned=True, witnesses=["w/1"]), "a witness name outside the id alphabet"),
    (with_(head, cosigned=True, witnesses=["w1", "w1"]), "a witness named twice"),
    (with_(head, origin="iotguard/"), "empty cluster in origin"),
    (with_(head, origin="other/c1"), "wrong origin prefix"),
    (with_(head, root=ROOT.rstrip("=")), "root without padding"),
    (with_(head, root=base64.urlsafe_b64encode(bytes([251] * 32)).decode()), "url-safe base64 root"),
    (with_(head, ch_pubkey=HEX64.upper()), "uppercase hex key"),
    (with_(head, ch_pubkey=HEX64[:62]), "short key"),
    (with_(head, checkpoint=CHECKPOINT.replace("\n\n", "\n")), "note without blank line"),
    (with_(head, checkpoint=CHECKPOINT.replace("\u2014", "-")), "ASCII dash instead of em dash"),
    (with_(head, checkpoint=CHECKPOINT.rstrip("\n")), "signature line without newline"),
    (with_(head, checkpoint=f"iotguard/c1\n7\n{ROOT}\n\n"), "note without signature"),
    (with_(head, checkpoint=CHECKPOINT + "\u2014 w " + "A" * 8192 + "\n"), "note too long"),
    (without(head, "checkpoint"), "missing checkpoint"),
    (with_(head, height=7), "unknown field"),
]

# ---- ledger events ------------------------------------------------------------
genesis = {"index": 0, "ts": TS, "type": "genesis", "hash": HEX64, "prev": ZERO64,
           "cluster": "c1", "ch_pubkey": HEX64B, "version": 1}
enroll = {"index": 7, "ts": TS, "type": "enroll", "hash": HEX64, "prev": HEX64B,
          "id": "dev1", "role": "device", "pubkey": HEX64B, "by": "admin1"}
revoke = {"index": 8, "ts": TS, "type": "revoke", "hash": HEX64B, "prev": HEX64,
          "id": "dev1", "reason": "lost in the field \u00e9", "by": "offline:root"}
unknown = {"index": 9, "ts": TS, "type": "unknown", "type_code": 36, "hash": HEX64,
           "prev": HEX64B, "body": "0100026869"}
undecodable = {"index": 10, "ts": TS, "type": "enroll", "error": "body does not decode",
               "hash": HEX64, "prev": HEX64B, "body": ""}
# key-service records (values from the docs/LEDGER.md vectors)
CODE_ID = "0102030405060708"
join_code = {"index": 11, "ts": TS, "type": "join_code", "hash": HEX64, "prev": HEX64B,
             "code_id": CODE_ID, "code_hash": HEX64B, "role": "device", "expires_at": 1700086400,
             "by": "admin1"}
join_used = {"index": 12, "ts": TS, "type": "join_used", "hash": HEX64, "prev": HEX64B,
             "code_id": CODE_ID, "id": "dev9"}
enroll_joined = with_(enroll, id="dev9", by="join:" + CODE_ID, join_code=CODE_ID)
key_issued = {"index": 13, "ts": TS, "type": "key_issued", "hash": HEX64, "prev": HEX64B,
              "key_id": "404142434445464748494a4b4c4d4e4f", "a": "a", "b": "b",
              "expires_at": 1700003600, "suite": "xchacha20poly1305"}
attest = {"index": 14, "ts": TS, "type": "attest", "hash": HEX64, "prev": HEX64B,
          "id": "a", "measurement": HEX64B, "allowed": "yes"}
# bank records (values from the docs/PROTOCOL.md and docs/LEDGER.md coin vectors)
COIN_HASH = "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6"
COIN2_HASH = "441edc56cebc8e285d02267aa650819f15add7b06ef9b41b2690128dce655924"
credit_ev = {"index": 15, "ts": TS, "type": "credit", "hash": HEX64, "prev": HEX64B,
             "id": "sensor-1", "amount": 100, "by": "admin1"}
mint_ev = {"index": 16, "ts": TS, "type": "coin_mint", "hash": HEX64, "prev": HEX64B,
           "owner": "sensor-1", "expires_at": 1700086400, "count": 2, "coin_hashes": [COIN_HASH, COIN2_HASH]}
redeem_ev = {"index": 17, "ts": TS, "type": "coin_redeem", "hash": HEX64, "prev": HEX64B,
             "coin_hash": COIN_HASH, "analyst": "analyst-1", "collector": "sensor-1"}
refund_ev = {"index": 18, "ts": TS, "type": "coin_refund", "hash": HEX64, "prev": HEX64B,
             "coin_hash": COIN2_HASH, "collector": "sensor-1", "reason": "expired"}
BANK_EVENTS = [credit_ev, with_(credit_ev, by="offline:root", amount=1), mint_ev,
               with_(mint_ev, count=1, coin_hashes=[COIN_HASH]), redeem_ev,
               with_(redeem_ev, header_hash="404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"),
               refund_ev,
               with_(refund_ev, reason="cancelled"), with_(undecodable, type="coin_mint"),
               with_(unknown, type_code=47)]
# custody records (values from the docs/LEDGER.md custody vectors)
G1 = "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
G2 = "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919"
custody_epoch_ev = {"index": 19, "ts": TS, "type": "custody_epoch", "hash": HEX64, "prev": HEX64B,
                    "epoch": 1, "k": 2, "n": 3, "holders": ["dev1", "dev2", "dev3"], "commitments": [G1, G2],
                    "reason": "initial", "by": "cluster-head"}
custody_active_ev = {"index": 20, "ts": TS, "type": "custody_active", "hash": HEX64, "prev": HEX64B, "epoch": 1}
custody_bad_ev = {"index": 21, "ts": TS, "type": "custody_bad_share", "hash": HEX64, "prev": HEX64B,
                  "epoch": 1, "holder": "dev2", "reason": "share does not match the commitments"}
custody_sealed_ev = {"index": 22, "ts": TS, "type": "custody_sealed", "hash": HEX64, "prev": HEX64B,
                     "epoch": 1, "c0": G1, "by": "admin1"}
CUSTODY_EVENTS = [custody_epoch_ev, with_(custody_epoch_ev, reason="revoked"), custody_active_ev, custody_bad_ev,
                  with_(custody_bad_ev, reason=""), custody_sealed_ev, with_(enroll, zone="north"),
                  with_(undecodable, type="custody_epoch"), with_(unknown, type_code=55)]
# key-ring records (docs/LEDGER.md 7.17-7.19)
kp_epoch_ev = {"index": 23, "ts": TS, "type": "kp_epoch", "hash": HEX64, "prev": HEX64B,
               "epoch": 1, "pool": 1000, "ring": 30, "q": 1, "seed": HEX64B, "reason": "initial", "by": "demo"}
kp_ring_ev = {"index": 24, "ts": TS, "type": "kp_ring", "hash": HEX64, "prev": HEX64B,
              "epoch": 1, "id": "dev1", "ring_hash": HEX64}
kp_comp_ev = {"index": 25, "ts": TS, "type": "kp_compromised", "hash": HEX64, "prev": HEX64B,
              "epoch": 1, "id": "dev1", "ids": [3, 17, 999]}
KP_EVENTS = [kp_epoch_ev, with_(kp_epoch_ev, reason="rotate", epoch=2, by="admin1"),
             with_(kp_epoch_ev, reason="policy", pool=16777216, ring=1024, q=16), kp_ring_ev, kp_comp_ev,
             with_(kp_comp_ev, ids=[0]), with_(undecodable, type="kp_compromised")]
EVENT_OK = KP_EVENTS + CUSTODY_EVENTS + BANK_EVENTS + [genesis, enroll, revoke, unknown, undecodable, with_(revoke, reason=""),
            with_(enroll, role="admin"), with_(unknown, body=""),
            join_code, with_(join_code, role="admin", expires_at=0), join_used, enroll_joined,
            key_issued, with_(key_issued, suite="aes256gcm"), attest, with_(attest, allowed="no"),
            with_(attest, allowed="unlisted"), with_(unknown, type_code=20),
            with_(undecodable, type="key_issued")]
# Shared mode (plugin_opt_ledger_dsn): each broker names itself in the events it publishes.
EVENT_OK += [with_(enroll, broker="b1", by="admin1@b1"), with_(revoke, broker="broker-2.eu_west"),
             with_(credit_ev, broker="b2"), with_(unknown, broker="b1")]
EVENT_BAD = [
    (with_(enroll, broker="b 1"), "broker name with a space"),
    (with_(revoke, broker=""), "empty broker name"),
    (with_(revoke, broker="b" * 33), "broker name over 32 characters"),
    (with_(genesis, index=1), "genesis not at index 0"),
    (with_(genesis, prev=HEX64), "genesis with a predecessor"),
    (without(genesis, "version"), "genesis without version"),
    (with_(enroll, index=0), "enroll at index 0"),
    (with_(enroll, role="root"), "unknown role"),
    (with_(enroll, role="none"), "role none"),
    (with_(enroll, pubkey=HEX64B[:-1]), "short pubkey"),
    (with_(enroll, by=""), "empty by"),
    (with_(enroll, by="x" * 81), "by too long"),
    (with_(enroll, by="adm\nin"), "control character in by"),
    (with_(enroll, hash="g" * 64), "non-hex hash"),
    (without(enroll, "prev"), "missing prev"),
    (with_(enroll, reason="x"), "enroll with a revoke field"),
    (with_(revoke, reason="x" * 257), "reason too long"),
    (with_(revoke, reason="bad\u0007bell"), "control character in reason"),
    (with_(revoke, reason="c1\u0085control"), "C1 control in reason"),
    (without(revoke, "reason"), "revoke without reason"),
    (with_(unknown, type_code=2), "unknown form with a known type code"),
    (without(unknown, "type_code"), "unknown without type_code"),
    (with_(unknown, body="abc"), "odd-length hex body"),
    (with_(unknown, type="coin"), "unrecognised type name"),
    (with_(undecodable, error="other"), "undecodable with another error text"),
    (with_(genesis, ts=-1), "negative ts"),
    (with_(join_code, secret="101112131415161718191a1b1c1d1e1f"), "join_code with a secret"),
    (with_(join_code, code="igjc1-" + "0" * 48), "join_code with the code text"),
    (with_(join_code, code_id=CODE_ID + "00"), "code_id of 9 bytes"),
    (with_(join_code, code_id="0a0b0c0d0e0f1a1b".upper()), "uppercase code_id"),
    (with_(join_code, code_hash=HEX64B[:-2]), "short code_hash"),
    (with_(join_code, role="none"), "join_code role none"),
    (with_(join_code, expires_at=-1), "negative expires_at"),
    (with_(join_code, expires_at=1.5), "fractional expires_at"),
    (without(join_code, "code_hash"), "join_code without code_hash"),
    (without(join_used, "id"), "join_used without id"),
    (with_(join_used, id="dev 9"), "join_used with a bad id"),
    (with_(enroll, join_code="01020304050607"), "enroll join_code of 7 bytes"),
    (with_(key_issued, key="00" * 32), "key_issued with key bytes"),
    (with_(key_issued, key_id="40" * 32), "key_id of 32 bytes"),
    (with_(key_issued, suite="aes128gcm"), "unknown suite"),
    (with_(key_issued, suite=1), "numeric suite"),
    (without(key_issued, "b"), "key_issued without b"),
    (with_(key_issued, index=0), "key_issued at index 0"),
    (with_(attest, allowed=True), "boolean allowed"),
    (with_(attest, allowed="maybe"), "unknown allowed value"),
    (with_(attest, measurement=HEX64B.upper()), "uppercase measurement"),
    (without(attest, "measurement"), "attest without measurement"),
    (with_(unknown, type_code=18), "unknown form with the key_issued type code"),
    (with_(undecodable, type="coin"), "undecodable with an unknown type name"),
    (with_(unknown, type_code=33), "unknown form with the coin_mint type code"),
    (with_(custody_epoch_ev, share="00" * 32), "custody_epoch with a share"),
    (with_(custody_epoch_ev, holders=["dev1", "dev1", "dev3"]), "a holder listed twice"),
    (with_(custody_epoch_ev, holders=["dev 1", "dev2", "dev3"]), "a holder that is not an id"),
    (with_(custody_epoch_ev, k=1), "k of 1"),
    (with_(custody_epoch_ev, n=256), "n of 256"),
    (with_(custody_epoch_ev, epoch=0), "epoch 0"),
    (with_(custody_epoch_ev, reason="whim"), "unknown custody reason"),
    (with_(custody_epoch_ev, commitments=[G1.upper(), G2]), "uppercase commitment"),
    (with_(custody_epoch_ev, count=2), "custody_epoch with a count"),
    (without(custody_epoch_ev, "commitments"), "custody_epoch without commitments"),
    (with_(custody_active_ev, epoch="1"), "string epoch"),
    (without(custody_bad_ev, "holder"), "bad_share without holder"),
    (with_(custody_sealed_ev, c0=G1[:-2]), "short c0"),
    (with_(custody_sealed_ev, key="00" * 32), "custody_sealed with key bytes"),
    (with_(enroll, zone="north wing"), "zone that is not an id"),
    (with_(enroll, zone=""), "empty zone"),
    (with_(unknown, type_code=48), "unknown form with the custody_epoch type code"),
    (with_(unknown, type_code=53), "unknown form with the kp_ring type code"),
    (with_(kp_epoch_ev, epoch=0), "kp epoch 0"),
    (with_(kp_epoch_ev, pool=1), "pool of 1"),
    (with_(kp_epoch_ev, pool=16777217), "pool above 2^24"),
    (with_(kp_epoch_ev, ring=1025), "ring above 1024"),
    (with_(kp_epoch_ev, q=17), "q above 16"),
    (with_(kp_epoch_ev, reason="timer"), "unknown kp reason"),
    (with_(kp_epoch_ev, seed=HEX64B[:-2]), "short seed"),
    (with_(kp_epoch_ev, pool_secret=HEX64), "kp_epoch with the pool secret"),
    (without(kp_epoch_ev, "seed"), "kp_epoch without seed"),
    (with_(kp_ring_ev, keys=[HEX64]), "kp_ring with keys"),
    (with_(kp_ring_ev, id="dev 1"), "kp_ring with a bad id"),
    (without(kp_ring_ev, "ring_hash"), "kp_ring without ring_hash"),
    (with_(kp_comp_ev, ids=[]), "kp_compromised without ids"),
    (with_(kp_comp_ev, ids=[3, 3]), "a compromised id listed twice"),
    (with_(kp_comp_ev, ids=[16777216]), "an id outside any pool"),
    (with_(kp_comp_ev, ids=["3"]), "a string id"),
    (with_(credit_ev, amount=0), "credit of 0"),
    (with_(credit_ev, amount="5"), "string amount"),
    (without(credit_ev, "by"), "credit without by"),
    (with_(credit_ev, id="sensor 1"), "credit with a bad id"),
    (with_(mint_ev, coin_hashes=[]), "mint without coin hashes"),
    (with_(mint_ev, coin_hashes=[COIN_HASH] * 2), "the same coin minted twice"),
    (with_(mint_ev, coin_hashes=[HEX64[:2] + "%062x" % i for i in range(65)], count=65), "65 coins"),
    (with_(mint_ev, count=0), "count 0"),
    (with_(mint_ev, coins=["000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"]), "mint with the coins"),
    (with_(mint_ev, coin_hashes=[COIN_HASH.upper(), COIN2_HASH]), "uppercase coin hash"),
    (without(mint_ev, "expires_at"), "mint without expiry"),
    (without(mint_ev, "owner"), "mint without owner"),
    (with_(redeem_ev, coin_hash=COIN_HASH[:-2]), "short coin hash"),
    (with_(redeem_ev, coin="000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), "redeem with the coin"),
    (without(redeem_ev, "analyst"), "redeem without analyst"),
    (without(redeem_ev, "collector"), "redeem without collector"),
    (with_(redeem_ev, header_hash=COIN_HASH[:-2]), "short header hash"),
    (with_(refund_ev, reason="lost"), "unknown refund reason"),
    (with_(refund_ev, reason="Expired"), "refund reason not lowercase"),
    (without(refund_ev, "collector"), "refund without collector"),
    (with_(refund_ev, analyst="an1"), "refund with a redeem field"),
]

# ---- stats ----------------------------------------------------------------------
stats = {
    "ts": TS, "cluster": "c1", "uptime_s": 42,
    "connected": {"device": 3, "analyst": 0, "monitor": 1, "admin": 1, "witness": 0, "bridge": 0, "total": 5},
    "auth": {"accepted": 10, "refused_total": 3, "refused": {"bad_signature": 2, "expired": 1}},
    "acl": {"denied_publish": 1, "denied_subscribe": 0, "denied_read": 0},
    "identities": {"active": 5, "revoked": 1},
    "ledger": {"height": 8, "pending": 0, "checkpoint_size": 8, "batches": 4,
               "commit_latency_us": {"last": 900, "avg": 1200, "max": 5000}},
    "entropy": {"accepted": 7, "refused": {"malformed": 1, "replayed": 2, "over_rate": 0, "attestation": 3},
                "pool_inputs": 8, "devices": {"dev1": {"accepted": 7, "refused": 0}, "dev2": {"accepted": 0, "refused": 6}}},
    "attestation": {"reports": 4, "over_rate": 0, "flagged": ["dev2"]},
    "keys": {"issued": 2, "refused": 1, "live": 2, "revocation_notices": 0, "suite": "aes256gcm"},
    "joins": {"completed": 1, "failed": 0, "codes_unused": 3},
    "bank": {"minted": 80, "redeemed": 41, "refunded": 3, "outstanding": 36,
             "refused": {"no_credit": 1, "unknown_coin": 0, "already_spent": 2, "expired": 0, "wrong_collector": 0,
                         "wrong_topic": 1, "malformed": 0, "not_allowed": 4, "over_limit": 0, "storage_failed": 0,
                         "outcome_unknown": 0}},
    "proofs": {"served": 12, "refused": 3, "failed": 0, "queue": 1, "avg_latency_us": 180},
    "fleet": {"served": 4, "refused": 1},
    "sealed": False,
    "sealed_refused": {"requests": 0, "dev_messages": 0, "admin": 0, "joins": 0},
}
SEALED_STATS = {k: v for k, v in stats.items() if k not in ("entropy", "attestation", "keys", "joins", "bank")}
SEALED_STATS.update(sealed=True, sealed_refused={"requests": 5, "dev_messages": 1, "admin": 3, "joins": 1})
STATS_OK = [stats, SEALED_STATS, nested(stats, ["auth", "refused"], {}), nested(stats, ["entropy", "devices"], {}),
            nested(stats, ["attestation", "flagged"], []), nested(stats, ["keys", "suite"], "xchacha20poly1305")]
WITNESS_STATS = {"quorum": 2, "cosigned_size": 9, "quorum_latency_ms": 41, "requests": 12, "refusals": 0,
                 "per_witness": {"w1": {"cosigned_size": 9, "refusals": 0, "conflicts": 1, "last_status": 200},
                                 "w2": {"cosigned_size": 0, "refusals": 1, "conflicts": 0, "last_status": 422}}}
STATS_OK.append(with_(stats, witnesses=WITNESS_STATS))
NONCES_SHARED = {"sent": 40, "batches_sent": 9, "publish_failed": 0, "received": 77, "known": 2, "dropped_full": 0,
                 "malformed": 1, "not_from_bridge": 0}
SHARED_STATS = {"connected": True, "followed": 12, "conflicts": 1, "reconnects": 0, "follow_lag_ms": 3.25,
                "unavailable_refusals": 0, "nonces_shared": NONCES_SHARED}
STATS_OK += [with_(stats, broker="b1", shared=SHARED_STATS),
             with_(SEALED_STATS, broker="b2", shared=dict(SHARED_STATS, connected=False, follow_lag_ms=0))]
STATS_BAD = [
    (with_(stats, broker="b1"), "a broker name without the shared figures"),
    (with_(stats, shared=SHARED_STATS), "shared figures without the broker name"),
    (with_(stats, broker="b/1", shared=SHARED_STATS), "bad broker name"),
    (with_(stats, broker="b1", shared=without(SHARED_STATS, "followed")), "shared without followed"),
    (with_(stats, broker="b1", shared=dict(SHARED_STATS, lag=1)), "unknown shared figure"),
    (with_(stats, broker="b1", shared=dict(SHARED_STATS, follow_lag_ms=-1)), "negative follow lag"),
    (with_(stats, broker="b1", shared=dict(SHARED_STATS, connected=1)), "connected not a boolean"),
    (with_(stats, broker="b1", shared=without(SHARED_STATS, "nonces_shared")), "shared without nonces_shared"),
    (with_(stats, broker="b1", shared=dict(SHARED_STATS, nonces_shared=without(NONCES_SHARED, "malformed"))),
     "nonces_shared without malformed"),
    (with_(stats, broker="b1", shared=dict(SHARED_STATS, nonces_shared=dict(NONCES_SHARED, sent=-1))),
     "negative nonces sent"),
    (with_(stats, witnesses=dict(WITNESS_STATS, quorum=0)), "witness quorum 0"),
    (with_(stats, witnesses=nested(WITNESS_STATS, ["per_witness", "w/1"], WITNESS_STATS["per_witness"]["w1"])),
     "witness id outside the id alphabet"),
    (with_(stats, witnesses=nested(WITNESS_STATS, ["per_witness", "w1", "last_status"], 700)), "status over 599"),
    (nested(stats, ["connected", "total"], None, delete=True), "connected without total"),
    (nested(stats, ["connected", "guest"], 1), "unknown role in connected"),
    (nested(stats, ["auth", "refused", "Bad-Signature"], 1), "reason name not snake_case"),
    (nested(stats, ["auth", "refused", "expired"], -1), "negative counter"),
    (nested(stats, ["ledger", "commit_latency_us", "max"], 1.5), "fractional latency"),
    (nested(stats, ["ledger", "batches"], None, delete=True), "ledger without batches"),
    (nested(stats, ["acl", "denied_write"], 0), "unknown acl counter"),
    (without(stats, "identities"), "missing identities"),
    (without(stats, "keys"), "an unsealed cluster head without its keys section"),
    (with_(SEALED_STATS, sealed=False), "deferred sections absent while not sealed"),
    (without(stats, "sealed"), "stats without sealed"),
    (nested(stats, ["sealed_refused", "joins"], None, delete=True), "sealed_refused without joins"),
    (with_(stats, cluster="c 1"), "bad cluster name"),
    (with_(stats, extra={}), "unknown top-level field"),
    (without(stats, "entropy"), "missing entropy"),
    (without(stats, "keys"), "missing keys"),
    (without(stats, "joins"), "missing joins"),
    (without(stats, "attestation"), "missing attestation"),
    (nested(stats, ["entropy", "refused", "stale"], 0), "unknown entropy refusal reason"),
    (nested(stats, ["entropy", "refused", "attestation"], None, delete=True), "entropy refusal reason missing"),
    (nested(stats, ["entropy", "devices", "dev 1"], {"accepted": 1, "refused": 0}), "bad device id"),
    (nested(stats, ["entropy", "devices", "dev1"], {"accepted": 1}), "device without refused"),
    (nested(stats, ["entropy", "devices", "dev1"], {"accepted": 1, "refused": {"malformed": 1}}),
     "per-device refusals by reason"),
    (nested(stats, ["entropy", "pool_inputs"], -1), "negative pool_inputs"),
    (nested(stats, ["attestation", "flagged"], ["dev2", "dev2"]), "device flagged twice"),
    (nested(stats, ["attestation", "flagged"], "dev2"), "flagged not a list"),
    (nested(stats, ["keys", "suite"], "aes128gcm"), "unknown suite"),
    (nested(stats, ["keys", "live"], None, delete=True), "keys without live"),
    (nested(stats, ["keys", "key"], "00" * 32), "key material in stats"),
    (nested(stats, ["joins", "codes"], ["igjc1-" + "0" * 48]), "join codes in stats"),
    (nested(stats, ["joins", "codes_unused"], 0.5), "fractional codes_unused"),
    (without(stats, "bank"), "missing bank"),
    (nested(stats, ["bank", "outstanding"], None, delete=True), "bank without outstanding"),
    (nested(stats, ["bank", "refused", "no_credit"], None, delete=True), "bank refusal code missing"),
    (nested(stats, ["bank", "refused", "bankrupt"], 1), "unknown bank refusal code"),
    (nested(stats, ["bank", "minted"], -1), "negative minted"),
    (nested(stats, ["bank", "coin_hashes"], [HEX64]), "coin hashes in stats"),
]

# ---- ch requests ------------------------------------------------------------------
ping = {"type": "ping", "nonce": "240e151121d0dcface939becf83d18aa"}
join = {"type": "join"}
session_key = {"type": "session_key", "peer": "dev2", "nonce": "a3f1c9e07b2d4c65a3f1c9e07b2d4c65"}
SIG128 = HEX64 + HEX64B
attest_req = {"type": "attest", "measurement": HEX64, "ts": TS, "sig": SIG128}
HEADER_B64 = base64.b64encode(bytes(range(147))).decode()
DATA_TOPIC = "iotguard/demo/dev/sensor-1/data/temp"
COIN_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
mint_req = {"type": "mint", "count": 16, "nonce": "2f6c1e0a9b7d4e53"}
redeem_req = {"type": "redeem", "topic": DATA_TOPIC, "header": HEADER_B64, "nonce": "r-17"}
refund_req = {"type": "refund", "coins": [COIN_HEX, COIN_HEX.upper()[:-2] + "20"], "nonce": "f1"}
balance_req = {"type": "balance", "nonce": "b1"}
BANK_CH_OK = [mint_req, with_(mint_req, count=1), with_(mint_req, count=64),
              redeem_req, with_(redeem_req, header=base64.b64encode(bytes(140)).decode()),
              with_(redeem_req, header=base64.b64encode(bytes(203)).decode()),
              with_(redeem_req, topic="iotguard/c1/dev/dev1/data/a.b-c d"),
              refund_req, with_(refund_req, coins=[COIN_HEX]), balance_req, {"type": "balance"}]
CH_OK = BANK_CH_OK + [ping, {"type": "ping"}, with_(ping, nonce=""), with_(ping, nonce="n" * 128),
         join, session_key, with_(session_key, nonce="!" * 64), with_(session_key, nonce="x"),
         attest_req, with_(attest_req, ts=0)]
CH_BAD = [
    (with_(ping, nonce="n" * 129), "nonce too long"),
    (with_(ping, nonce=5), "numeric nonce"),
    (with_(ping, ts=1), "unknown field"),
    ({"type": "teleport"}, "unknown request type"),
    ({"nonce": "x"}, "no type"),
    ([], "array"),
    (with_(join, id="dev9"), "join naming an id (the token does)"),
    (with_(join, code="igjc1-" + "0" * 48), "join carrying the code"),
    (without(session_key, "nonce"), "session_key without nonce"),
    (without(session_key, "peer"), "session_key without peer"),
    (with_(session_key, nonce=""), "empty request nonce"),
    (with_(session_key, nonce="n" * 65), "request nonce too long"),
    (with_(session_key, nonce="has space"), "space in request nonce"),
    (with_(session_key, peer="dev 2"), "bad peer id"),
    (with_(session_key, peer=""), "empty peer"),
    (with_(session_key, suite="aes256gcm"), "requester choosing the suite"),
    (without(attest_req, "sig"), "attest without sig"),
    (with_(attest_req, measurement=HEX64[:-1]), "measurement of 63 hex digits"),
    (with_(attest_req, sig=HEX64), "signature of 32 bytes"),
    (with_(attest_req, ts=-1), "negative ts"),
    (with_(attest_req, ts=str(TS)), "string ts"),
    (with_(attest_req, measurement="g" * 64), "non-hex measurement"),
    (with_(mint_req, count=0), "mint of 0 coins"),
    (with_(mint_req, count=65), "mint over the per-request limit"),
    (with_(mint_req, count=2.5), "fractional count"),
    (with_(mint_req, count="3"), "string count"),
    (without(mint_req, "nonce"), "mint without nonce"),
    (with_(mint_req, nonce="has space"), "space in mint nonce"),
    (with_(mint_req, owner="dev2"), "mint for someone else"),
    (without(redeem_req, "header"), "redeem without header"),
    (without(redeem_req, "topic"), "redeem without topic"),
    (with_(redeem_req, header=base64.b64encode(bytes(139)).decode()), "header of 139 bytes"),
    (with_(redeem_req, header=base64.b64encode(bytes(204)).decode()), "header of 204 bytes"),
    (with_(redeem_req, header=HEADER_B64.rstrip("=") + "A"), "header not base64 with padding"),
    (with_(redeem_req, topic="iotguard/demo/dev/sensor-1/results/temp"), "redeem on a results topic"),
    (with_(redeem_req, topic="iotguard/demo/dev/sensor-1/data/+"), "redeem with a wildcard topic"),
    (with_(redeem_req, topic="iotguard/demo/dev/sensor-1/data/a/b"), "redeem with a deeper topic"),
    (with_(redeem_req, coin=COIN_HEX), "redeem carrying a coin"),
    (with_(refund_req, coins=[]), "refund of no coins"),
    (with_(refund_req, coins=[COIN_HEX] * 2), "the same coin twice"),
    (with_(refund_req, coins=["%064x" % i for i in range(65)]), "refund of 65 coins"),
    (with_(refund_req, coins=[COIN_HEX[:-2]]), "coin of 31 bytes"),
    (with_(refund_req, coins=COIN_HEX), "coins not a list"),
    (with_(balance_req, id="dev2"), "balance of someone else"),
    (with_(balance_req, nonce=""), "empty balance nonce"),
]

# ---- inbox ---------------------------------------------------------------------------
pong = {"type": "pong", "nonce": ping["nonce"], "ts": TS}
error = {"type": "error", "error": "unknown_type",
         "message": "unknown request type; this cluster head understands: ping"}
welcome = {"type": "welcome", "cluster": "c1", "id": "dev9", "role": "device", "ch_pubkey": HEX64, "index": 12}
# the box of the docs/PROTOCOL.md session-key vector: 66-byte plaintext + 16-byte MAC
BOX82 = base64.b64encode(bytes(range(82))).decode()
key_msg = {"type": "session_key", "key_id": "404142434445464748494a4b4c4d4e4f", "peer": "dev2",
           "suite": "aes256gcm", "expires_at": 1700003600, "direction": 0,
           "box_nonce": "606162636465666768696a6b6c6d6e6f7071727374757677", "box": BOX82}
key_revoked = {"type": "key_revoked", "key_id": "404142434445464748494a4b4c4d4e4f", "peer": "dev2",
               "reason": "peer_revoked"}
NEW_CODES = ["peer_offline", "peer_unknown", "not_allowed", "revoked", "code_used", "code_expired",
             "code_unknown", "not_joining", "rate_limited", "bad_signature", "not_enrolled", "id_taken",
             "stale", "storage_failed", "internal", "malformed", "outcome_unknown"]
coins_msg = {"type": "coins", "nonce": mint_req["nonce"], "count": 2, "expires_at": 1700086400,
             "box_nonce": "606162636465666768696a6b6c6d6e6f7071727374757677",
             "box": base64.b64encode(bytes(2 * 32 + 16)).decode()}
redeemed_msg = {"type": "redeemed", "nonce": "r-17", "header_hash": HEX64, "suite": "aes256gcm",
                "box_nonce": "606162636465666768696a6b6c6d6e6f7071727374757677",
                "box": base64.b64encode(bytes(range(136))).decode()}
refunded_msg = {"type": "refunded", "nonce": "f1", "refunded": 1,
                "refused": [{"coin_hash": COIN_HASH, "error": "already_spent"},
                            {"coin_hash": ZERO64, "error": "malformed"}], "balance": 7}
balance_msg = {"type": "balance", "nonce": "b1", "balance": 7, "outstanding": 3}
BANK_CODES = ["no_credit", "unknown_coin", "already_spent", "expired", "wrong_collector", "wrong_topic",
              "malformed", "not_allowed", "over_limit", "storage_failed", "outcome_unknown"]
# a mint whose record may or may not be durable: the coins come along (docs/PROTOCOL.md "Unknown outcomes")
mint_unknown = {"type": "error", "error": "outcome_unknown", "nonce": mint_req["nonce"], "index": 41,
                "count": 2, "expires_at": 1700086400, "box_nonce": coins_msg["box_nonce"], "box": coins_msg["box"],
                "message": "a disk write failed after the mint record was written, so it may or may not be durable"}
BANK_INBOX_OK = [coins_msg, with_(coins_msg, count=64, box=base64.b64encode(bytes(64 * 32 + 16)).decode()),
                 with_(coins_msg, count=1, box=base64.b64encode(bytes(48)).decode()),
                 redeemed_msg, with_(redeemed_msg, suite="xchacha20poly1305"),
                 refunded_msg, with_(refunded_msg, refunded=0), with_(refunded_msg, refused=[]),
                 balance_msg, without(balance_msg, "nonce"), with_(balance_msg, balance=0, outstanding=0),
                 {"type": "error", "error": "storage_failed", "message": "the redeem could not be recorded; retry later"},
                 mint_unknown, without(mint_unknown, "count", "expires_at", "box_nonce", "box"),
                 with_(refunded_msg, refused=[{"coin_hash": COIN_HASH, "error": "outcome_unknown"}])]
BANK_INBOX_OK += [{"type": "error", "error": c, "nonce": "r-17", "message": "refused"} for c in BANK_CODES]
# every error names the request it answers (docs/PROTOCOL.md "Which request an error answers")
BANK_INBOX_OK += [{"type": "error", "error": c, "request": r, "nonce": "r-17", "message": "refused"}
                  for c, r in [("no_credit", "mint"), ("already_spent", "redeem"), ("outcome_unknown", "redeem"),
                               ("malformed", "refund")]]
BANK_INBOX_OK += [with_(mint_unknown, request="mint")]
INBOX_OK = BANK_INBOX_OK + [pong, with_(pong, nonce=""), error, with_(error, error="too_large"),
            welcome, with_(welcome, role="admin", index=1),
            key_msg, with_(key_msg, direction=1, suite="xchacha20poly1305"),
            with_(key_msg, box=base64.b64encode(bytes(77)).decode()),
            with_(key_msg, box=base64.b64encode(bytes(204)).decode()),
            key_revoked] + [with_(error, error=c) for c in NEW_CODES]
INBOX_OK += [
    {"type": "error", "error": "malformed", "request": "attest", "message": "attest needs \"measurement\""},
    {"type": "error", "error": "storage_failed", "request": "attest", "message": "not recorded"},
    {"type": "error", "error": "sealed", "request": "mint", "nonce": "m-1",
     "message": "the cluster head is sealed: 3 custody holders must connect before it can serve the bank "
                "(mint, redeem, refund, balance); retry later"},
    {"type": "error", "error": "outcome_unknown", "request": "session_key", "nonce": "00ff" * 8,
     "message": "ask for a new session key once the broker is back"},
    {"type": "error", "error": "peer_offline", "request": "session_key", "nonce": "k-1", "message": "retry"},
    {"type": "error", "error": "outcome_unknown", "request": "join", "message": "connect with your key"},
    {"type": "error", "error": "not_enrolled", "request": "session_key", "message": "only join"},
    {"type": "error", "error": "malformed", "request": "ping", "message": "nonce too long"},
    {"type": "error", "error": "conflict", "request": "session_key", "nonce": "k-2",
     "message": "another broker changed the shared ledger first, so the key was not recorded"},
    {"type": "error", "error": "conflict", "request": "attest", "message": "report it again"},
]
INBOX_BAD = [
    (without(pong, "ts"), "pong without ts"),
    (without(pong, "nonce"), "pong without nonce"),
    (with_(pong, ts="now"), "string ts"),
    (with_(pong, error="x"), "pong with an error field"),
    (with_(error, error="Unknown Type"), "error code not snake_case"),
    (with_(error, message=""), "empty message"),
    (without(error, "message"), "error without message"),
    ({"type": "ping", "nonce": "x"}, "a request is not an inbox message"),
    ({"type": "pong", "nonce": "x", "ts": TS, "extra": True}, "unknown field"),
    (with_(error, error="no_such_code"), "undocumented error code"),
    (with_(error, request="frobnicate"), "error naming a request type the cluster head does not know"),
    (with_(error, request=""), "error naming an empty request type"),
    (with_(error, request=7), "error with a non-string request"),
    (with_(mint_unknown, index=-1), "negative outcome_unknown index"),
    (with_(mint_unknown, count=65), "outcome_unknown carrying more coins than a mint may"),
    (without(welcome, "ch_pubkey"), "welcome without ch_pubkey"),
    (with_(welcome, ch_pubkey=HEX64.upper()), "uppercase ch_pubkey"),
    (with_(welcome, index=0), "welcome pointing at genesis"),
    (with_(welcome, role="none"), "welcome with role none"),
    (with_(welcome, code="igjc1-" + "0" * 48), "welcome echoing the code"),
    (without(key_msg, "box"), "session_key without box"),
    (with_(key_msg, key="00" * 32), "session_key with the key in clear"),
    (with_(key_msg, direction=2), "direction 2"),
    (with_(key_msg, direction=True), "boolean direction"),
    (with_(key_msg, suite="none"), "unknown suite"),
    (with_(key_msg, key_id="40" * 15), "key_id of 15 bytes"),
    (with_(key_msg, box_nonce="60" * 12), "box_nonce of 12 bytes"),
    (with_(key_msg, box=BOX82.rstrip("=")), "box without padding"),
    (with_(key_msg, box=base64.urlsafe_b64encode(bytes([251]) * 82).decode()), "url-safe base64 box"),
    (with_(key_msg, box=base64.b64encode(bytes(76)).decode()), "box too short for any plaintext"),
    (with_(key_msg, box=base64.b64encode(bytes(205)).decode()), "box too long"),
    (with_(key_msg, expires_at=-5), "negative expires_at"),
    (with_(key_msg, peer="dev/2"), "bad peer"),
    (without(key_revoked, "peer"), "key_revoked without peer"),
    (with_(key_revoked, reason="bored"), "unknown revocation reason"),
    (with_(key_revoked, key_id="XYZ"), "bad key_id"),
    (without(coins_msg, "box"), "coins without box"),
    (with_(coins_msg, coins=[COIN_HEX]), "coins in clear"),
    (with_(coins_msg, count=0), "zero coins"),
    (with_(coins_msg, count=65), "65 coins"),
    (with_(coins_msg, box=base64.b64encode(bytes(47)).decode()), "coin box shorter than one coin"),
    (with_(coins_msg, box=base64.b64encode(bytes(2065)).decode()), "coin box over 64 coins"),
    (without(coins_msg, "nonce"), "coins without the request nonce"),
    (without(coins_msg, "expires_at"), "coins without expiry"),
    (with_(redeemed_msg, box=base64.b64encode(bytes(135)).decode()), "redeemed box of 135 bytes"),
    (with_(redeemed_msg, box=base64.b64encode(bytes(137)).decode()), "redeemed box of 137 bytes"),
    (with_(redeemed_msg, header_hash=HEX64.upper()), "uppercase header_hash"),
    (with_(redeemed_msg, suite="aes128gcm"), "unknown suite"),
    (with_(redeemed_msg, payload_key=HEX64), "payload key in clear"),
    (without(redeemed_msg, "header_hash"), "redeemed without header_hash"),
    (with_(refunded_msg, refunded=-1), "negative refunded"),
    (with_(refunded_msg, refused=[{"coin_hash": COIN_HASH, "error": "expired"}]), "unknown refund refusal"),
    (with_(refunded_msg, refused=[{"coin": COIN_HEX, "error": "already_spent"}]), "a coin in the refusals"),
    (without(refunded_msg, "balance"), "refunded without balance"),
    (without(balance_msg, "outstanding"), "balance without outstanding"),
    (with_(balance_msg, balance=-1), "negative balance"),
    ({"type": "error", "error": "bankrupt", "nonce": "m1", "message": "x"}, "undocumented bank code"),
    ({"type": "error", "error": "no_credit", "nonce": "has space", "message": "x"}, "bad nonce on an error"),
    ({"type": "error", "error": "no_credit", "nonce": "", "message": "x"}, "empty nonce on an error"),
]

# ---- entropy contributions --------------------------------------------------------------
SEALED = base64.b64encode(bytes(range(88))).decode()
contribution = {"seq": 1716200000123, "sealed": SEALED}
ENTROPY_OK = [contribution, with_(contribution, seq=1), with_(contribution, seq=2 ** 53 - 1),
              with_(contribution, sealed=base64.b64encode(bytes([255]) * 88).decode())]
ENTROPY_BAD = [
    (with_(contribution, seq=0), "seq 0"),
    (with_(contribution, seq=2 ** 53), "seq beyond 2^53 - 1"),
    (with_(contribution, seq=1.5), "fractional seq"),
    (with_(contribution, seq="1"), "string seq"),
    (without(contribution, "sealed"), "no sealed"),
    (without(contribution, "seq"), "no seq"),
    (with_(contribution, sealed=base64.b64encode(bytes(87)).decode()), "87-byte box"),
    (with_(contribution, sealed=base64.b64encode(bytes(89)).decode()), "89-byte box"),
    (with_(contribution, sealed=SEALED.rstrip("=")), "box without padding"),
    (with_(contribution, sealed=base64.urlsafe_b64encode(bytes([251]) * 88).decode()), "url-safe base64"),
    (with_(contribution, sealed=SEALED[:-3] + "B=="), "non-canonical last character"),
    (with_(contribution, block="00" * 32), "the block in clear"),
    ([contribution], "array"),
]

# ---- admin API (the key-service and bank commands; the rest has its own tests) ----------------
create_codes = {"command": "create_join_codes", "role": "device", "ttl": 3600, "count": 2, "correlation": "j1"}
credit_cmd = {"command": "credit", "id": "dev1", "amount": 100, "correlation": "k1"}
ADMIN_REQ_OK = [{"commands": [credit_cmd]}, {"commands": [without(credit_cmd, "correlation"),
                                                          with_(credit_cmd, amount=1), with_(credit_cmd, amount=10 ** 9)]},
                {"commands": [create_codes]}, {"commands": [{"command": "create_join_codes", "role": "admin"}]},
                {"commands": [with_(create_codes, ttl=60, count=1), with_(create_codes, ttl=2592000, count=100)]},
                {"commands": [{"command": "get_identity", "id": "dev1"}, create_codes]}]
enroll_cmd = {"command": "enroll", "id": "dev1", "role": "device", "pubkey": HEX64, "correlation": "e1"}
ADMIN_REQ_OK += [{"commands": [enroll_cmd, with_(enroll_cmd, reenroll=True), with_(enroll_cmd, reenroll=False)]},
                 {"commands": [with_(enroll_cmd, zone="north-1"), with_(enroll_cmd, zone="z" * 64, reenroll=True)]}]
ADMIN_REQ_BAD = [
    ({"commands": [with_(enroll_cmd, zone="")]}, "empty zone"),
    ({"commands": [with_(enroll_cmd, zone="north wing")]}, "zone with a space"),
    ({"commands": [with_(enroll_cmd, zone="z" * 65)]}, "zone of 65 characters"),
    ({"commands": [with_(enroll_cmd, zone=3)]}, "numeric zone"),
    ({"commands": [with_(enroll_cmd, reenroll="yes")]}, "reenroll not a boolean"),
    ({"commands": [with_(enroll_cmd, reenroll=1)]}, "reenroll as a number"),
    ({"commands": [without(create_codes, "role")]}, "create_join_codes without role"),
    ({"commands": [with_(create_codes, role="root")]}, "unknown role"),
    ({"commands": [with_(create_codes, ttl=59)]}, "ttl under a minute"),
    ({"commands": [with_(create_codes, ttl=2592001)]}, "ttl over 30 days"),
    ({"commands": [with_(create_codes, count=0)]}, "count 0"),
    ({"commands": [with_(create_codes, count=101)]}, "count over 100"),
    ({"commands": [with_(create_codes, id="dev9")]}, "codes bound to an id"),
    ({"commands": [with_(create_codes, count="2")]}, "string count"),
    ({"commands": [with_(credit_cmd, amount=0)]}, "credit of 0"),
    ({"commands": [with_(credit_cmd, amount=10 ** 9 + 1)]}, "credit over 10^9"),
    ({"commands": [with_(credit_cmd, amount=-5)]}, "negative credit"),
    ({"commands": [with_(credit_cmd, amount="5")]}, "string amount"),
    ({"commands": [without(credit_cmd, "id")]}, "credit without id"),
    ({"commands": [without(credit_cmd, "amount")]}, "credit without amount"),
    ({"commands": [with_(credit_cmd, id="dev 1")]}, "credit with a bad id"),
]
CODE_A = "igjc1-0102030405060708" + "a1" * 16
CODE_B = "igjc1-1112131415161718" + "b2" * 16
codes_resp = {"command": "create_join_codes", "correlation": "j1", "ok": True, "role": "device",
              "expires_at": 1716203600, "codes": [CODE_A, CODE_B]}
credit_resp = {"command": "credit", "correlation": "k1", "ok": True, "index": 9, "id": "dev1", "balance": 113}
ADMIN_RESP_OK = [{"responses": [credit_resp]}, {"responses": [with_(credit_resp, correlation="", balance=1)]},
                 {"responses": [{"command": "credit", "correlation": "", "ok": False, "error": "not_found",
                                 "message": "nobody is not an active identity"}]},
                 {"responses": [codes_resp]}, {"responses": [with_(codes_resp, codes=[CODE_A], correlation="")]},
                 {"responses": [{"command": "create_join_codes", "correlation": "", "ok": False,
                                 "error": "storage_failed", "message": "the ledger could not record the join codes"}]},
                 {"responses": [{"command": "enroll", "correlation": "s1", "ok": False, "error": "sealed",
                                 "message": "the cluster head is sealed: 3 custody holders must connect before it "
                                            "can record an enrolment; retry later"}]},
                 {"responses": [{"command": "credit", "correlation": "c2", "ok": False, "error": "outcome_unknown",
                                 "message": "a disk write failed after the credit was written"}]},
                 {"responses": [{"command": "create_join_codes", "correlation": "j2", "ok": False,
                                 "error": "outcome_unknown",
                                 "message": "a disk write failed after join code records were written; none were "
                                            "handed out: create new codes once the broker is back"}]}]
revoke_resp = {"command": "revoke", "correlation": "r1", "ok": True, "index": 12, "id": "dev1",
               "disconnected": True, "cancelled_credit": 15, "cancelled_coins": 5}
ADMIN_RESP_OK += [{"responses": [revoke_resp]},
                  {"responses": [with_(revoke_resp, cancelled_credit=0, cancelled_coins=0, disconnected=False)]},
                  {"responses": [{"command": "enroll", "correlation": "", "ok": False, "error": "already_revoked",
                                  "message": "dev1 was revoked; enroll it again with --reenroll"}]}]
identity_view = {"id": "dev1", "role": "device", "status": "active", "pubkey": HEX64, "enrolled_index": 3,
                 "enrolled_ts": TS, "connected": True}
get_resp = {"command": "get_identity", "correlation": "g1", "ok": True, "identity": identity_view}
ADMIN_RESP_OK += [{"responses": [get_resp]}, {"responses": [with_(get_resp, identity=with_(identity_view, zone="north-1"))]}]
# a shared ledger: another broker's record came first (final), or its database is unreachable (retriable)
ADMIN_RESP_OK += [{"responses": [{"command": "enroll", "correlation": "e9", "ok": False, "error": "conflict",
                                  "message": "nothing was enrolled: another broker changed this identity first; "
                                             "re-read and retry"}]},
                  {"responses": [{"command": "revoke", "correlation": "", "ok": False, "error": "storage_failed",
                                  "message": "the revocation was not recorded: the shared ledger's database "
                                             "(PostgreSQL) is unreachable, so nothing was recorded; retry"}]}]
ADMIN_RESP_BAD = [
    ({"responses": [with_(get_resp, identity=with_(identity_view, zone="north 1"))]}, "zone with a space"),
    ({"responses": [with_(get_resp, identity=with_(identity_view, zone=""))]}, "empty zone"),
    ({"responses": [without(revoke_resp, "cancelled_credit")]}, "revoke without cancelled_credit"),
    ({"responses": [with_(revoke_resp, cancelled_coins=-1)]}, "negative cancelled_coins"),
    ({"responses": [without(codes_resp, "codes")]}, "no codes"),
    ({"responses": [with_(codes_resp, codes=[])]}, "empty codes"),
    ({"responses": [with_(codes_resp, codes=[CODE_A, CODE_A])]}, "the same code twice"),
    ({"responses": [with_(codes_resp, codes=[CODE_A.upper()])]}, "uppercase code"),
    ({"responses": [with_(codes_resp, codes=[CODE_A[:-2]])]}, "code of 23 bytes"),
    ({"responses": [with_(codes_resp, codes=["igjc2-" + CODE_A[6:]])]}, "wrong code prefix"),
    ({"responses": [without(codes_resp, "expires_at")]}, "no expires_at"),
    ({"responses": [without(codes_resp, "role")]}, "no role"),
    ({"responses": [with_(codes_resp, code_hashes=[HEX64])]}, "unknown field"),
    ({"responses": [with_(codes_resp, ok=False)]}, "ok false with codes"),
    ({"responses": [without(credit_resp, "balance")]}, "credit without balance"),
    ({"responses": [without(credit_resp, "index")]}, "credit without index"),
    ({"responses": [with_(credit_resp, balance=0)]}, "balance 0 after a grant"),
    ({"responses": [with_(credit_resp, index=0)]}, "credit at index 0"),
    ({"responses": [with_(credit_resp, amount=5)]}, "unknown field"),
]

# ---- agent payloads (plaintexts inside data, result and m2m messages) ----
reading = {"seq": 1, "t": TS, "load": 0.52, "mem_kb": 812344, "temp_c": 41.5}
READING_OK = [reading, {"seq": 2, "t": TS}, without(reading, "temp_c", "mem_kb"), with_(reading, load=0),
              with_(reading, humidity=55.5), with_(reading, temp_c=-40.0)]
READING_BAD = [
    (without(reading, "seq"), "no seq"),
    (without(reading, "t"), "no t"),
    (with_(reading, seq=0), "seq 0"),
    (with_(reading, t=1.5), "fractional t"),
    (with_(reading, load=-1), "negative load"),
    (with_(reading, mem_kb="812344"), "mem_kb as a string"),
    (with_(reading, temp_c=250), "temp beyond the thermal zone's range"),
    (with_(reading, note="hot"), "a non-numeric measurement"),
    (with_(reading, **{"bad name": 1}), "measurement name with a space"),
    ([reading], "not an object"),
]
stat = {"count": 3, "mean": 0.5, "min": 0.1, "max": 0.9}
result = {"seq": 3, "stats": {"load": stat, "temp_c": with_(stat, mean=41.3, min=40, max=43)}}
err_result = {"error": "not_json", "message": "the payload is not a JSON object"}
RESULT_OK = [result, {"seq": 0, "stats": {}}, err_result,
             with_(err_result, error="undecryptable", message="the payload does not open with the keys of its coin")]
RESULT_BAD = [
    (without(result, "seq"), "no seq"),
    (without(result, "stats"), "no stats"),
    (nested(result, ["stats", "load", "count"], 0), "count 0"),
    (nested(result, ["stats", "load", "mean"], None, delete=True), "field without mean"),
    (nested(result, ["stats", "load", "median"], 1), "unknown stat"),
    (nested(result, ["stats"], {"f%d" % i: stat for i in range(9)}), "9 fields"),
    (with_(result, error="not_json"), "stats and error at once"),
    (with_(err_result, error="bad_json"), "unknown error code"),
    (without(err_result, "message"), "error without message"),
    (with_(err_result, message=""), "empty message"),
    (with_(err_result, seq=3), "unknown field in an error"),
]
m2m_pt = {"n": 1, "t": TS}
M2M_PT_OK = [m2m_pt, with_(m2m_pt, n=2 ** 53 - 1)]
M2M_PT_BAD = [
    (without(m2m_pt, "n"), "no n"),
    (without(m2m_pt, "t"), "no t"),
    (with_(m2m_pt, n=0), "n 0"),
    (with_(m2m_pt, t=-1), "negative t"),
    (with_(m2m_pt, text="hi"), "unknown field"),
]

# ---- log proofs (docs/PROTOCOL.md "Log proofs") ----------------------------------------
H32 = base64.b64encode(bytes(range(32))).decode()
CP_TEXT = ("iotguard/demo\n12\n" + H32 + "\n\n\u2014 iotguard/demo " +
           base64.b64encode(bytes(68)).decode() + "\n")
incl_req = {"type": "log_inclusion", "index": 11, "nonce": "p-1"}
cons_req = {"type": "log_consistency", "from": 8, "nonce": "p-2"}
CH_OK += [incl_req, without(incl_req, "nonce"), with_(incl_req, index=0),
          {"type": "log_inclusion", "of": "enrollment"}, cons_req, with_(cons_req, to=12), with_(cons_req, **{"from": 0})]
CH_BAD += [
    ({"type": "log_inclusion"}, "inclusion of nothing"),
    (with_(incl_req, of="enrollment"), "both index and of"),
    ({"type": "log_inclusion", "of": "revocation"}, "of something else than the enrolment"),
    (with_(incl_req, index=-1), "negative index"),
    (with_(incl_req, index=1.5), "fractional index"),
    (with_(incl_req, index="11"), "string index"),
    (without(cons_req, "from"), "consistency without from"),
    (with_(cons_req, to=-3), "negative to"),
    (with_(cons_req, nonce=""), "empty proof nonce"),
]
incl_msg = {"type": "log_inclusion_proof", "nonce": "p-1", "index": 11,
            "entry": base64.b64encode(bytes(range(200))).decode(), "proof": [H32] * 4, "checkpoint": CP_TEXT}
cons_msg = {"type": "log_consistency_proof", "nonce": "p-2", "from": 8, "to": 12, "proof": [H32] * 2,
            "checkpoint": CP_TEXT}
INBOX_OK += [incl_msg, without(incl_msg, "nonce"), with_(cons_msg, proof=[]), cons_msg,
             with_(cons_msg, checkpoint=CP_TEXT + "\u2014 witness1 " + base64.b64encode(bytes(76)).decode() + "\n")]
INBOX_OK += [{"type": "error", "error": c, "request": r, "nonce": "p-1", "message": "refused"}
             for c, r in [("no_tiles", "log_inclusion"), ("beyond_checkpoint", "log_inclusion"),
                          ("bad_range", "log_consistency"), ("busy", "log_consistency"),
                          ("proof_unavailable", "log_inclusion"), ("rate_limited", "log_consistency")]]
INBOX_BAD += [
    (without(incl_msg, "entry"), "inclusion proof without the entry"),
    (with_(incl_msg, proof=[H32[:-1]]), "path hash not 32 bytes of base64"),
    (with_(incl_msg, proof=[H32] * 65), "path longer than any tree allows"),
    (with_(incl_msg, checkpoint="iotguard/demo\n12\n"), "checkpoint without a root"),
    (with_(incl_msg, entry="not base64!"), "entry not base64"),
    (without(cons_msg, "to"), "consistency proof without to"),
    (with_(cons_msg, root=H32), "consistency proof with an unsigned root"),
]
STATS_BAD += [(nested(stats, ["proofs", "queue"], -1), "negative proof queue"),
              (without(stats, "proofs"), "stats without proofs")]

# ---- witnesses (docs/PROTOCOL.md "Witnesses") ------------------------------------
COSIG_LINE = "\u2014 w1 " + base64.b64encode(bytes(76)).decode() + "\n"
wit_req = {"type": "witness_add_checkpoint", "request": "old 8\n" + (H32 + "\n") * 2 + "\n" + CP_TEXT}
wit_ok = {"type": "witness_cosignature", "status": 200, "size": 12, "cosignature": COSIG_LINE}
wit_409 = {"type": "witness_cosignature", "status": 409, "size": 12, "known_size": 8, "error": "old size 0 is not 8"}
INBOX_OK += [wit_req, with_(wit_req, request="old 0\n\n" + CP_TEXT),
             {"type": "error", "error": "not_allowed", "request": "witness_cosignature", "message": "not a witness"}]
INBOX_BAD += [
    (with_(wit_req, request=CP_TEXT), "witness request without the old line"),
    (with_(wit_req, request="old 08\n\n" + CP_TEXT), "old size with a leading zero"),
    (without(wit_req, "request"), "witness request without its text"),
]
CH_OK += [wit_ok, wit_409, {"type": "witness_cosignature", "status": 422, "size": 12, "error": "fork"},
          {"type": "witness_cosignature", "status": 400, "error": "malformed"}]
CH_BAD += [
    (with_(wit_ok, status=201), "a status tlog-witness does not define"),
    (with_(wit_ok, cosignature="\u2014 w/1 " + base64.b64encode(bytes(76)).decode() + "\n"), "witness name not an id"),
    (with_(wit_ok, cosignature="\u2014 w1 " + base64.b64encode(bytes(72)).decode() + "\n"), "cosignature blob not 76 bytes"),
    (with_(wit_409, known_size=-1), "negative known size"),
    (without(wit_ok, "status"), "answer without status"),
]

# ---- custody state and events (docs/PROTOCOL.md "Custody") ------------------------
custody_holder = {"id": "dev1", "index": 1, "zone": "north", "online": True, "acked": True}
custody_state = {"state": "active", "epoch": 3, "k": 2, "n": 3, "sealed": False, "key_on_disk": False,
                 "holders": [custody_holder, with_(custody_holder, id="dev2", index=2, zone=None, online=False),
                             with_(custody_holder, id="dev3", index=3)],
                 "shares_collected": 0, "next_rotation_at": 1716286400}
custody_ev = {"type": "custody_event", "event": "bad_share", "ts": TS, "epoch": 3, "holder": "dev2",
              "message": "the share does not match epoch 3's commitments"}
CUSTODY_OK = [custody_state,
              with_(custody_state, state="sealed", sealed=True, shares_collected=1, last_bad_holder="dev2"),
              with_(custody_state, state="dealing", epoch=0, holders=[], next_rotation_at=None,
                    message="waiting for 3 online eligible holders"),
              with_(custody_state, state="dealing", dealing_epoch=4,
                    holders=[with_(custody_holder, acked=False)]),
              with_(custody_state, state="off", epoch=0, k=0, n=0, holders=[], next_rotation_at=None),
              custody_ev, with_(without(custody_ev, "message"), event="ack"),
              {"type": "custody_event", "event": "unsealed", "ts": TS, "epoch": 3,
               "message": "unsealed with 2 shares, 4 ms after the k-th"},
              {"type": "custody_event", "event": "deal_abandoned", "ts": TS, "epoch": 4, "message": "timeout"}]
CUSTODY_BAD = [
    (with_(custody_state, state="open"), "unknown custody state"),
    (with_(custody_state, k=1), "k of 1"),
    (with_(custody_state, n=256), "n of 256"),
    (without(custody_state, "holders"), "state without holders"),
    (with_(custody_state, holders=[with_(custody_holder, share=HEX64)]), "a share in a holder"),
    (with_(custody_state, holders=[without(custody_holder, "online")]), "holder without online"),
    (with_(custody_state, holders=[with_(custody_holder, index=0)]), "holder index 0"),
    (with_(custody_state, secret=HEX64), "a secret in the state"),
    (with_(custody_state, next_rotation_at=-1), "negative rotation time"),
    (with_(custody_ev, event="leak"), "unknown custody event"),
    (without(custody_ev, "holder"), "bad_share without its holder"),
    (with_(custody_ev, share=HEX64), "a share in an event"),
    (without(custody_ev, "ts"), "event without ts"),
]
G_HEX = "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
deal_msg = {"type": "custody_deal", "epoch": 3, "k": 2, "n": 3, "index": 2, "commitments": [G_HEX, HEX64],
            "box_nonce": "00" * 24, "box": base64.b64encode(bytes(95)).decode()}
request_msg = {"type": "custody_request", "epoch": 3, "request": "ab" * 16, "pk": HEX64}
INBOX_OK += [deal_msg, {"type": "custody_active", "epoch": 3}, request_msg,
             {"type": "error", "error": "old_epoch", "request": "custody_share", "nonce": "cus-0a1b2c3d4e5f",
              "message": "epoch 2 is void"},
             {"type": "error", "error": "not_holder", "request": "custody_ack", "nonce": "n1", "message": "no"}]
INBOX_BAD += [
    (with_(deal_msg, share=HEX64), "a share in the clear"),
    (with_(deal_msg, commitments=[G_HEX]), "one commitment"),
    (with_(deal_msg, box=base64.b64encode(bytes(94)).decode()), "deal box of 94 bytes"),
    (with_(deal_msg, index=0), "index 0"),
    (with_(request_msg, pk=HEX64[:62]), "short requester key"),
    (without(request_msg, "request"), "request without its id"),
]
ack_req = {"type": "custody_ack", "nonce": "cus-0a1b2c3d4e5f", "epoch": 3, "index": 2}
share_req = {"type": "custody_share", "nonce": "cus-0a1b2c3d4e5f", "epoch": 3, "index": 2, "request": "ab" * 16,
             "box_nonce": "00" * 24, "box": base64.b64encode(bytes(77)).decode()}
CH_OK += [ack_req, with_(ack_req, error="bad_share", message="does not match the commitments"), share_req,
          {"type": "custody_share", "nonce": "cus-1", "epoch": 3, "request": "ab" * 16, "error": "no_share",
           "message": "no share of epoch 3"}]
CH_BAD += [
    (without(ack_req, "nonce"), "ack without nonce"),
    (with_(ack_req, error="lost"), "unknown ack error"),
    (with_(share_req, error="no_share"), "a share and an error"),
    (without(share_req, "box"), "share without its box"),
    (with_(share_req, box=base64.b64encode(bytes(78)).decode()), "release box of 78 bytes"),
    (with_(share_req, share=HEX64), "a share in the clear"),
    (with_(share_req, request="AB" * 16), "uppercase request id"),
]
ADMIN_REQ_OK += [{"commands": [{"command": "custody_status"}, {"command": "custody_seal", "correlation": "c1"},
                                {"command": "custody_rotate"}]}]
ADMIN_REQ_BAD += [({"commands": [{"command": "custody_seal", "force": True}]}, "custody_seal with a field"),
                  ({"commands": [{"command": "custody_open"}]}, "unknown custody command")]
custody_status_resp = dict(custody_state, command="custody_status", correlation="c1", ok=True,
                           counters={"acks": 3, "unseals": 1})
ADMIN_RESP_OK += [{"responses": [custody_status_resp,
                                 {"command": "custody_seal", "correlation": "", "ok": True, "message": "ch.key removed"},
                                 {"command": "custody_seal", "correlation": "", "ok": False, "error": "no_epoch",
                                  "message": "no custody epoch is active yet"}]}]
recover_resp = {"command": "custody_recover", "correlation": "c2", "ok": True, "epoch": 3, "k": 2, "n": 3,
                "ch_pk": HEX64, "request": "ab" * 16, "commitments": [G_HEX, HEX64],
                "shares": [{"holder": "dev1", "index": 1, "pk": HEX64B, "box_nonce": "00" * 24,
                            "box": base64.b64encode(bytes(77)).decode()},
                           {"holder": "dev3", "index": 3, "pk": HEX64, "box_nonce": "11" * 24,
                            "box": base64.b64encode(bytes(range(77))).decode()}],
                "sealed": base64.b64encode(bytes(200)).decode()}
ADMIN_REQ_OK += [{"commands": [{"command": "custody_recover", "pk": HEX64}]}]
ADMIN_REQ_BAD += [({"commands": [{"command": "custody_recover"}]}, "recover without pk"),
                  ({"commands": [{"command": "custody_status", "pk": HEX64}]}, "pk on status")]
ADMIN_RESP_OK += [{"responses": [recover_resp]}]
ADMIN_RESP_BAD += [({"responses": [with_(recover_resp, S=HEX64)]}, "a secret in recover"),
                   ({"responses": [with_(recover_resp, shares=[with_(recover_resp["shares"][0], share=HEX64)])]},
                    "a share in the clear in recover"),
                   ({"responses": [without(recover_resp, "sealed")]}, "recover without the sealed key")]
ADMIN_RESP_BAD += [({"responses": [with_(custody_status_resp, share=HEX64)]}, "a share in custody_status"),
                   ({"responses": [without(custody_status_resp, "holders")]}, "custody_status without holders"),
                   ({"responses": [{"command": "custody_seal", "correlation": "", "ok": False, "error": "nope",
                                    "message": "x"}]}, "unknown custody error")]
stats_custody = {"state": "active", "epoch": 3, "shares_collected": 0, "epochs_dealt": 3, "epochs_active": 3,
                 "deals_abandoned": 0, "acks": 9, "bad_acks": 0, "shares_good": 2, "shares_bad": 1,
                 "shares_refused": 1, "unseals": 1, "recoveries": 0, "rotations": 2, "last_bad_holder": "dev2"}
STATS_OK.append(with_(stats, custody=stats_custody))
STATS_BAD += [(with_(stats, custody=without(stats_custody, "acks")), "custody stats without acks"),
              (with_(stats, custody=with_(stats_custody, state="open")), "unknown custody state in stats")]

# ---- admin unseal mode (docs/PROTOCOL.md "Custody: admin approval") ------------------
SIG64 = base64.b64encode(bytes(range(64))).decode()
pending = {"epoch": 3, "request": "ab" * 16, "pk": HEX64, "size": 42, "root": ROOT}
approval = {"admin_pk": HEX64B, "sig": SIG64, "size": 42, "root": ROOT}
CUSTODY_OK += [with_(custody_state, state="sealed", sealed=True, unseal="admin", pending_approval=pending),
               with_(custody_state, unseal="auto"),
               {"type": "custody_event", "event": "approved", "ts": TS, "epoch": 3, "message": "admin1"}]
CUSTODY_BAD += [(with_(custody_state, unseal="never"), "unknown unseal mode"),
                (with_(custody_state, pending_approval=without(pending, "root")), "pending approval without root"),
                (with_(custody_state, pending_approval=with_(pending, request="ab" * 15)), "short request id")]
INBOX_OK += [with_(deal_msg, admins=[HEX64, HEX64B], admins_sig=SIG64), with_(request_msg, approval=approval)]
INBOX_BAD += [(with_(deal_msg, admins=[HEX64]), "admins without their signature"),
              (with_(deal_msg, admins_sig=SIG64), "a signature without the admins"),
              (with_(deal_msg, admins=[], admins_sig=SIG64), "an empty admin list"),
              (with_(request_msg, approval=without(approval, "sig")), "approval without sig"),
              (with_(request_msg, approval=with_(approval, root=SIG64)), "approval root of 64 bytes")]
CH_OK += [{"type": "custody_share", "nonce": "cus-1", "epoch": 3, "request": "ab" * 16, "error": "not_approved",
           "message": "epoch 3 was dealt in admin unseal mode and the request carries no admin approval"}]
ADMIN_REQ_OK += [{"commands": [{"command": "custody_approve", "sig": SIG64, "correlation": "c3"}]}]
ADMIN_REQ_BAD += [({"commands": [{"command": "custody_approve"}]}, "approve without sig"),
                  ({"commands": [{"command": "custody_approve", "sig": SIG64[:-4]}]}, "approve with a short sig"),
                  ({"commands": [{"command": "custody_rotate", "sig": SIG64}]}, "sig on rotate")]
ADMIN_RESP_OK += [{"responses": [with_(custody_status_resp, state="sealed", sealed=True, unseal="admin",
                                       pending_approval=pending),
                                 {"command": "custody_approve", "correlation": "", "ok": True,
                                  "message": "approved; the holders of epoch 3 are asked for their shares"},
                                 {"command": "custody_approve", "correlation": "", "ok": False,
                                  "error": "bad_signature", "message": "not your signature"},
                                 {"command": "custody_approve", "correlation": "", "ok": False,
                                  "error": "not_pending", "message": "nothing waits"}]}]
ADMIN_RESP_BAD += [({"responses": [with_(custody_status_resp, pending_approval=with_(pending, sk=HEX64))]},
                    "a key in pending_approval"),
                   ({"responses": [with_(custody_status_resp, ledger={"size": 3})]}, "ledger without root")]
ADMIN_RESP_OK += [{"responses": [with_(custody_status_resp, ledger={"size": 42, "root": ROOT}),
                                 {"command": "custody_recover", "correlation": "", "ok": False,
                                  "error": "approval_needed", "message": "admin unseal mode"}]}]
rec_approved = {"command": "custody_recover", "pk": HEX64, "request": "cd" * 16,
                "approval": {"sig": SIG64, "size": 42, "root": ROOT}}
ADMIN_REQ_OK += [{"commands": [rec_approved]}]
ADMIN_REQ_BAD += [({"commands": [without(rec_approved, "approval")]}, "recover request id without approval"),
                  ({"commands": [with_(rec_approved, approval={"sig": SIG64, "size": 42})]}, "approval without root"),
                  ({"commands": [{"command": "custody_status", "request": "cd" * 16}]}, "request id on status")]

# ---- key rings (issue 10): the revoked statement, key_ring, kp_* admin ------
KP_SEED = "5e" * 32
kp_revoked = {"type": "kp_revoked", "cluster": "c1", "epoch": 1, "pool": 1000, "ring": 30, "q": 1, "seed": KP_SEED,
              "serial": 7, "ids": [3, 17, 999], "devices": ["d1"], "sig": "ab" * 64}
KP_REVOKED_OK = [kp_revoked, with_(kp_revoked, ids=[], devices=[], serial=0),
                 with_(kp_revoked, epoch=2 ** 53 - 1, pool=2 ** 24, ring=1024, q=16, ids=[0, 2 ** 24 - 1],
                       devices=["a", "b.c-d_e"])]
KP_REVOKED_BAD = [
    (with_(kp_revoked, type="kp_revoke"), "wrong type"),
    (with_(kp_revoked, epoch=0), "epoch 0"),
    (with_(kp_revoked, pool=1), "pool 1"),
    (with_(kp_revoked, ring=1025), "ring over 1024"),
    (with_(kp_revoked, q=0), "q 0"),
    (with_(kp_revoked, seed=KP_SEED.upper()), "uppercase seed"),
    (with_(kp_revoked, ids=[3, 3]), "an id twice"),
    (with_(kp_revoked, ids=[2 ** 24]), "an id beyond the largest pool"),
    (with_(kp_revoked, ids=[-1]), "negative id"),
    (with_(kp_revoked, devices=["d 1"]), "a device that is not an id"),
    (with_(kp_revoked, sig="ab" * 63), "short signature"),
    (without(kp_revoked, "sig"), "unsigned"),
    (without(kp_revoked, "serial"), "no serial"),
    (with_(kp_revoked, keys=["00" * 32]), "a key in the statement"),
]
key_ring_req = {"type": "key_ring", "nonce": "kr-1"}
CH_OK.append(key_ring_req)
CH_BAD += [(without(key_ring_req, "nonce"), "key_ring without nonce"),
           (with_(key_ring_req, peer="d2"), "key_ring with a peer")]
key_ring_msg = {"type": "key_ring", "nonce": "kr-1", "epoch": 1, "pool": 1000, "ring": 30, "q": 1, "seed": KP_SEED,
                "ring_hash": HEX64, "box_nonce": "77" * 24,
                "box": base64.b64encode(bytes(8 + 4 + 4 + 1 + 32 + 1 + 2 + 30 * 36 + 16)).decode()}
INBOX_OK += [key_ring_msg, without(key_ring_msg, "nonce"),
             with_(key_ring_msg, ring=1024, box=base64.b64encode(bytes(50 + 64 + 1024 * 36 + 16)).decode()),
             with_(error, error="not_enabled", request="key_ring", nonce="kr-1"),
             with_(error, error="epoch_pending", request="key_ring", nonce="kr-1")]
INBOX_BAD += [(without(key_ring_msg, "box"), "key_ring without its box"),
              (without(key_ring_msg, "ring_hash"), "key_ring without its ring hash"),
              (with_(key_ring_msg, keys=["00" * 32]), "key_ring with a key in the clear"),
              (with_(key_ring_msg, box="AAAA"), "a box too short to hold a ring"),
              (with_(key_ring_msg, epoch=0), "key_ring of epoch 0"),
              (with_(error, error="no_ring", request="key_ring"), "unknown key_ring error")]
STATS_OK.append(with_(stats, kp={"epoch": 1, "rings": 3, "compromised_ids": 30, "dealt": 4, "refused": 1,
                                 "requests": 5}))
STATS_BAD += [(with_(stats, kp={"epoch": 1, "rings": 3}), "kp stats without counters"),
              (with_(stats, kp={"epoch": 1, "rings": 3, "compromised_ids": 0, "dealt": 0, "refused": 0,
                                "requests": 0, "seed": KP_SEED}), "kp stats with an unknown field")]
ADMIN_REQ_OK += [{"commands": [{"command": "kp_status", "correlation": "k1"}]},
                 {"commands": [{"command": "kp_rotate"}]}]
ADMIN_REQ_BAD += [({"commands": [{"command": "kp_rotate", "epoch": 3}]}, "kp_rotate with an epoch"),
                  ({"commands": [{"command": "kp_seal"}]}, "unknown kp command")]
kp_status_resp = {"command": "kp_status", "correlation": "k1", "ok": True, "enabled": True, "epoch": 2, "pool": 1000,
                  "ring": 30, "q": 1, "seed": KP_SEED, "rings": 4, "compromised_ids": 30,
                  "compromised_devices": ["d1"], "serial": 12,
                  "counters": {"requests": 5, "dealt": 4, "refused": 1, "rings_recorded": 4, "epochs": 2,
                               "compromised": 1, "statements": 3}}
ADMIN_RESP_OK += [{"responses": [kp_status_resp]},
                  {"responses": [with_(kp_status_resp, enabled=False, epoch=0, pool=0, ring=0, q=0, seed="",
                                       rings=0, compromised_ids=0, compromised_devices=[], serial=0,
                                       pending="the first key-ring epoch is not recorded yet")]},
                  {"responses": [{"command": "kp_rotate", "correlation": "k2", "ok": True,
                                  "message": "key-ring epoch 3 started; devices get new rings as they ask"}]},
                  {"responses": [{"command": "kp_rotate", "correlation": "k2", "ok": False, "error": "not_enabled",
                                  "message": "key rings are off"}]}]
ADMIN_RESP_BAD += [({"responses": [without(kp_status_resp, "seed")]}, "kp_status without seed"),
                   ({"responses": [with_(kp_status_resp, seed="5E" * 32)]}, "uppercase seed"),
                   ({"responses": [nested(kp_status_resp, ["counters", "keys"], 1)]}, "unknown kp counter")]

# The fleet listing (docs/PROTOCOL.md "Fleet listing").
fleet_req = {"type": "fleet", "nonce": "f-1", "offset": 500, "limit": 500}
CH_OK += [fleet_req, without(fleet_req, "offset", "limit"), with_(fleet_req, offset=0, limit=1),
          with_(fleet_req, limit=1000, offset=4294967295)]
CH_BAD += [(without(fleet_req, "nonce"), "fleet without nonce"),
           (with_(fleet_req, limit=0), "fleet limit 0"),
           (with_(fleet_req, limit=1001), "fleet limit over 1000"),
           (with_(fleet_req, offset=-1), "negative fleet offset"),
           (with_(fleet_req, limit=2.5), "fractional fleet limit"),
           (with_(fleet_req, role="device"), "fleet with a filter it does not have")]
fleet_dev = {"id": "dev1", "role": "device", "status": "active", "zone": "b2", "enrolled_ts": 1767225600123,
             "connected": True, "balance": 40, "outstanding": 3}
fleet_mon = {"id": "mon1", "role": "monitor", "status": "revoked", "enrolled_ts": 1767225600456, "connected": False}
fleet_msg = {"type": "fleet", "nonce": "f-1", "total": 10000, "offset": 0, "height": 1234, "part": 0, "parts": 19,
             "identities": [fleet_dev, fleet_mon, without(fleet_dev, "zone")]}
INBOX_OK += [fleet_msg, with_(fleet_msg, identities=[], offset=10000, parts=1),
             with_(fleet_msg, part=17, offset=473), with_(fleet_msg, part=63, parts=64),
             with_(fleet_msg, identities=[with_(fleet_dev, status="pending", balance=0, outstanding=0)]),
             with_(error, error="not_allowed", request="fleet", nonce="f-1"),
             with_(error, error="rate_limited", request="fleet", nonce="f-1")]
INBOX_BAD += [(without(fleet_msg, "height"), "fleet without height"),
              (without(fleet_msg, "part"), "fleet without part"),
              (without(fleet_msg, "parts"), "fleet without parts"),
              (with_(fleet_msg, parts=0), "a page of no parts"),
              (with_(fleet_msg, parts=65), "more than 64 parts"),
              (with_(fleet_msg, part=-1), "negative part"),
              (with_(fleet_msg, part=64, parts=64), "part 64"),
              (with_(fleet_msg, part="0"), "part as a string"),
              (without(fleet_msg, "nonce"), "fleet without nonce"),
              (with_(fleet_msg, identities=[without(fleet_dev, "balance")]), "a device without its balance"),
              (with_(fleet_msg, identities=[with_(fleet_mon, balance=1, outstanding=0)]), "a wallet on a monitor"),
              (with_(fleet_msg, identities=[with_(fleet_dev, pubkey="00" * 32)]), "a public key in the listing"),
              (with_(fleet_msg, identities=[with_(fleet_mon, status="gone")]), "unknown fleet status"),
              (with_(fleet_msg, identities=[without(fleet_mon, "connected")]), "an entry without connected")]
STATS_BAD += [(without(stats, "fleet"), "stats without fleet"),
              (nested(stats, ["fleet", "pages"], 1), "unknown fleet counter")]

# ---- dashboard config.json (iotguard dashboard-config) ----------------------
VKEY_W1 = "w1+0d6aca33+BBQGPYs2KoDJEOrYmRV3fOebhmLOisxvj6kxQF1UzwVk"
VKEY_W2 = "w2+378389b6+BMfVRmUeP94jDCM/IQYtvoqc7UjNJirZAAju1ptfD1zr"
dash_cfg = {"cluster": "demo", "ch_pubkey": HEX64}
dash_cfg_full = with_(dash_cfg, witnesses={"keys": [VKEY_W1, VKEY_W2], "quorum": 2},
                      url="wss://broker.example.org:8081/")
DASH_CFG_OK = [dash_cfg, dash_cfg_full, with_(dash_cfg, url="ws://localhost:8080/"),
               with_(dash_cfg, witnesses={"keys": [VKEY_W1], "quorum": 1})]
DASH_CFG_BAD = [(without(dash_cfg, "ch_pubkey"), "no cluster-head key"),
                (without(dash_cfg, "cluster"), "no cluster"),
                (with_(dash_cfg, ch_pubkey=HEX64.upper()), "uppercase hex key"),
                (with_(dash_cfg, ch_pubkey=HEX64[:62]), "short key"),
                (with_(dash_cfg, cluster="a/b"), "cluster outside the id alphabet"),
                (with_(dash_cfg, extra=1), "unknown field"),
                (nested(dash_cfg_full, ["witnesses", "quorum"], 0), "quorum 0"),
                (nested(dash_cfg_full, ["witnesses", "keys"], []), "no witness keys"),
                (nested(dash_cfg_full, ["witnesses", "keys"], [VKEY_W1, VKEY_W1]), "a witness twice"),
                (nested(dash_cfg_full, ["witnesses", "keys"], ["w1+0D6ACA33+" + VKEY_W1[12:]]), "uppercase key id"),
                (nested(dash_cfg_full, ["witnesses", "quorum"], None, delete=True), "witnesses without quorum"),
                (with_(dash_cfg, url="https://broker.example.org/"), "not a WebSocket URL"),
                (with_(dash_cfg, url="wss://a b/"), "a space in the URL"),
                (with_(dash_cfg, url="wss://"), "a URL without a host"),
                (with_(dash_cfg, url='wss://a"b/'), "a quote in the URL")]

CASES = {
    "dashboard-config": (DASH_CFG_OK, DASH_CFG_BAD),
    "kp-revoked": (KP_REVOKED_OK, KP_REVOKED_BAD),
    "custody": (CUSTODY_OK, CUSTODY_BAD),
    "status": (STATUS_OK, STATUS_BAD),
    "ledger-head": (HEAD_OK, HEAD_BAD),
    "ledger-event": (EVENT_OK, EVENT_BAD),
    "stats": (STATS_OK, STATS_BAD),
    "ch-request": (CH_OK, CH_BAD),
    "inbox": (INBOX_OK, INBOX_BAD),
    "entropy": (ENTROPY_OK, ENTROPY_BAD),
    "admin-request": (ADMIN_REQ_OK, ADMIN_REQ_BAD),
    "admin-response": (ADMIN_RESP_OK, ADMIN_RESP_BAD),
    "agent-reading": (READING_OK, READING_BAD),
    "agent-result": (RESULT_OK, RESULT_BAD),
    "m2m-plaintext": (M2M_PT_OK, M2M_PT_BAD),
}

EXPECTED_ID = "https://iotguard.invalid/schema/{}.schema.json"


def check_schema_file(name):
    """Meta-schema validity, $id, title and description for every schema."""
    problems = []
    path = os.path.join(validate.SCHEMA_DIR, name + validate.SUFFIX)
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as e:  # noqa: BLE001 - report any meta-schema failure
        problems.append(f"{name}: not a valid 2020-12 schema: {e}")
    if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
        problems.append(f"{name}: $schema is not draft 2020-12")
    if schema.get("$id") != EXPECTED_ID.format(name):
        problems.append(f"{name}: $id should be {EXPECTED_ID.format(name)}")
    for key in ("title", "description"):
        if not schema.get(key):
            problems.append(f"{name}: missing {key}")
    return problems


def main():
    failures = []
    for name in validate.schema_names():
        problems = check_schema_file(name)
        if name in CASES:
            failures += problems
        else:
            # Schemas without examples here (the admin API has its own
            # tests) are only checked, and their problems only reported.
            for p in problems:
                print("WARN", p, file=sys.stderr)
    for name, (good, bad) in CASES.items():
        for i, msg in enumerate(good):
            errs = validate.errors(name, msg)
            if errs:
                failures.append(f"{name}: valid example {i} rejected: {errs}")
            try:
                validate.validate(name, msg)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{name}: validate() raised for valid example {i}: {e}")
        for msg, why in bad:
            if not validate.errors(name, msg):
                failures.append(f"{name}: accepted a bad message ({why}): {json.dumps(msg)[:200]}")
            else:
                try:
                    validate.validate(name, msg)
                    failures.append(f"{name}: validate() did not raise ({why})")
                except Exception:  # noqa: BLE001
                    pass
    count = sum(len(g) + len(b) for g, b in CASES.values())
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"schema selftest: {count} examples over {len(CASES)} schemas, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
