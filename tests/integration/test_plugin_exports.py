"""The plugin's shared object exports only Mosquitto's three entry points.

Why this exists: broker-plugin/plugin.map keeps every other symbol (all of
lib/ and the glue) inside the .so. That makes the calls on the per-message
path (ACL check, message, tick) direct instead of going through the PLT,
and keeps iotguard's hundreds of global names out of the broker's
namespace, where they could clash with another plugin's. A build that drops
the version script would still work, so only this check notices.
"""
import subprocess

import igharness as H

ENTRY_POINTS = {"mosquitto_plugin_version", "mosquitto_plugin_init", "mosquitto_plugin_cleanup"}


def _exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # "<address> <type> <name>"; only code and data count (not versions).
        if len(parts) == 3 and parts[1] in "TtDdBbRrVvWw" and not parts[2].startswith("LIBMOSQ"):
            names.add(parts[2].split("@")[0])
    return names


def test_plugin_exports_only_the_mosquitto_entry_points():
    assert H.PLUGIN.exists(), f"{H.PLUGIN} is missing; build the project first"
    names = _exported(H.PLUGIN)
    assert ENTRY_POINTS <= names, f"Mosquitto cannot load a plugin without {sorted(ENTRY_POINTS - names)}"
    extra = sorted(n for n in names - ENTRY_POINTS if not n.startswith("_"))
    assert not extra, f"{len(extra)} more symbols are exported (is broker-plugin/plugin.map applied?): {extra[:10]}"
