// admin.js — the admin actions (enrol, revoke, join codes). They change the cluster for good,
// so each goes through a confirmation dialog that says exactly what will happen, and then
// through the broker's admin API ($CONTROL/iotguard/v1) like `iotguard enroll/revoke/join-code`
// would: the page holds no special power, the plugin checks that this identity is an active
// admin. The answer (or the error's code and message) is shown in #admin-result; join codes
// are shown once, as the CLI does, and never stored.

import { checkIdent } from "./token.js";

const HEX64 = /^[0-9a-fA-F]{64}$/;

export function createAdmin({ el, getConn, getRow, onChanged }) {
  const $ = (sel) => el.ownerDocument.querySelector(sel);
  const dialog = $("#confirm-dialog");
  const dialogTitle = $("#confirm-title");
  const dialogText = $("#confirm-text");
  const ok = $("#confirm-ok");
  const cancel = $("#confirm-cancel");
  const result = $("#admin-result");
  const reason = $("#revoke-reason");
  const codesBox = $("#join-codes");
  let busy = false;

  function show(okFlag, text) {
    result.dataset.ok = String(okFlag);
    result.textContent = text;
  }

  // Resolves true only when the operator pressed the confirm button.
  function confirm(title, text, actionLabel) {
    return new Promise((resolve) => {
      dialogTitle.textContent = title;
      dialogText.textContent = text;
      ok.textContent = actionLabel;
      const done = (v) => {
        ok.removeEventListener("click", onOk);
        cancel.removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        if (dialog.open) dialog.close();
        resolve(v);
      };
      const onOk = (e) => { e.preventDefault(); done(true); };
      const onCancel = (e) => { e.preventDefault(); done(false); };
      ok.addEventListener("click", onOk);
      cancel.addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
      cancel.focus();
    });
  }

  async function run(label, command, describeOk) {
    const conn = getConn();
    if (!conn) { show(false, label + ": not connected to the broker; wait for the connection and retry."); return null; }
    busy = true;
    show(true, label + ": sent, waiting for the cluster head to make it durable…");
    result.dataset.ok = "pending";
    try {
      const responses = await conn.admin([command]);
      const r = responses && responses[0];
      if (!r) { show(false, label + ": the broker answered without a response for the command."); return null; }
      if (!r.ok) {
        show(false, `${label} failed: ${r.error || "error"}: ${r.message || "no message"}`);
        return null;
      }
      show(true, describeOk(r));
      if (onChanged) onChanged();
      return r;
    } catch (e) {
      show(false, `${label} failed: ${e && e.message ? e.message : e}`);
      return null;
    } finally {
      busy = false;
    }
  }

  async function requestRevoke(id) {
    if (busy) return;
    const row = getRow(id);
    const why = reason.value.trim() || "revoked from the dashboard";
    const what = row && row.role ? `${id} (${row.role}${row.zone ? ", zone " + row.zone : ""})` : id;
    const sure = await confirm(
      "Revoke " + id + "?",
      `Revoke ${what} with reason "${why}". Its live connection is cut at once, it can no longer ` +
      `connect, its credit and unspent coins are cancelled, and peers drop the session keys it holds. ` +
      `This cannot be undone: the id comes back only by re-enrolment with a new key.`,
      "Revoke " + id);
    if (!sure) { show(true, "Revoke of " + id + " cancelled: nothing was sent."); return; }
    await run("Revoke " + id, { command: "revoke", id, reason: why }, (r) => {
      const parts = [`Revoked ${r.id || id} (ledger record #${r.index})`];
      parts.push(r.disconnected ? "its connection was cut" : "it was not connected");
      if (r.cancelled_credit) parts.push(`cancelled credit ${r.cancelled_credit}`);
      if (r.cancelled_coins) parts.push(`cancelled coins ${r.cancelled_coins}`);
      return parts.join("; ") + ".";
    });
  }

  $("#enroll-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    const f = e.target;
    const id = f.elements["enroll-id"].value.trim();
    const role = f.elements["enroll-role"].value;
    const pubkey = f.elements["enroll-pubkey"].value.trim().toLowerCase();
    const zone = f.elements["enroll-zone"].value.trim();
    if (!checkIdent(id)) { show(false, "Enrol: the id must be 1 to 64 of A-Z a-z 0-9 _ . -"); return; }
    if (!HEX64.test(pubkey)) { show(false, "Enrol: the public key must be 64 hex digits (iotguard keygen prints it)."); return; }
    if (zone && !checkIdent(zone)) { show(false, "Enrol: the zone must be 1 to 64 of A-Z a-z 0-9 _ . -"); return; }
    const sure = await confirm(
      "Enrol " + id + "?",
      `Enrol ${id} as ${role}${zone ? " in zone " + zone : ""} with public key ${pubkey}. ` +
      `Whoever holds the matching private key can connect as ${id} at once, with the ${role} role's rights.`,
      "Enrol " + id);
    if (!sure) { show(true, "Enrolment of " + id + " cancelled: nothing was sent."); return; }
    const cmd = { command: "enroll", id, role, pubkey };
    if (zone) cmd.zone = zone;
    const r = await run("Enrol " + id, cmd, (x) => `Enrolled ${x.id || id} as ${role} (ledger record #${x.index}).`);
    if (r) f.reset();
  });

  $("#join-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    const f = e.target;
    const role = f.elements["join-role"].value;
    const count = Number(f.elements["join-count"].value);
    const ttl = Number(f.elements["join-ttl"].value);
    if (!Number.isInteger(count) || count < 1 || count > 100) { show(false, "Join codes: the count must be 1 to 100."); return; }
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 2592000) { show(false, "Join codes: the validity must be 60 to 2592000 seconds."); return; }
    const sure = await confirm(
      "Create " + count + " join code" + (count === 1 ? "" : "s") + "?",
      `Create ${count} one-time join code${count === 1 ? "" : "s"} for the ${role} role, valid ${ttl} s. ` +
      `Anyone holding a code can join the cluster once as a new ${role}. The codes are shown only here, only once.`,
      "Create codes");
    if (!sure) { show(true, "Join codes cancelled: nothing was sent."); return; }
    codesBox.replaceChildren();
    const r = await run("Join codes", { command: "create_join_codes", role, count, ttl }, (x) =>
      `Created ${x.codes.length} join code${x.codes.length === 1 ? "" : "s"} for ${x.role}, valid until ` +
      new Date(x.expires_at * 1000).toISOString().replace(".000Z", "Z") + ". Copy them now: they are not shown again.");
    if (r && Array.isArray(r.codes)) {
      for (const code of r.codes) {
        const li = document.createElement("li");
        const c = document.createElement("code");
        c.textContent = code;
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn btn-xs";
        b.textContent = "Copy";
        b.addEventListener("click", async () => {
          try {
            await navigator.clipboard.writeText(code);
            b.textContent = "Copied";
          } catch {
            getSelection().selectAllChildren(c);
            b.textContent = "Selected: press Ctrl+C";
          }
        });
        li.append(c, b);
        codesBox.appendChild(li);
      }
    }
  });

  return {
    requestRevoke,
    setVisible(v) {
      if (el.hidden === !v) return;
      el.hidden = !v;
      if (!v) codesBox.replaceChildren();
    },
  };
}
