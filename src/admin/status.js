// posbridge status page: loads /status/api and redraws; reloads on every notice of the
// /status/ws socket (a payment changed, or the periodic tick). No framework, no build step.
// Everything from the server goes in with textContent: never as HTML.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let loading = false;
  let again = false;
  let retries = 0;

  function time(ms) {
    if (!ms) return "—";
    const d = new Date(ms);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (text !== null && text !== undefined) td.textContent = String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function pill(row, text, cls) {
    const td = cell(row, null);
    const span = document.createElement("span");
    span.className = "pill " + (cls || text);
    span.textContent = text;
    td.appendChild(span);
    return td;
  }

  function fill(tableId, emptyId, items, draw) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    for (const item of items) {
      const row = document.createElement("tr");
      draw(row, item);
      body.appendChild(row);
    }
    $(tableId).style.display = items.length ? "" : "none";
    if (emptyId) $(emptyId).style.display = items.length ? "none" : "";
  }

  function render(data) {
    $("alarms-count").textContent = data.alarms.length ? "(" + data.alarms.length + ")" : "";
    const alarms = $("alarms");
    alarms.replaceChildren();
    for (const a of data.alarms) {
      const li = document.createElement("li");
      li.textContent = (a.paymentId ? "payment " + a.paymentId + " · " : "") + (a.text || "");
      alarms.appendChild(li);
    }
    $("alarms-empty").style.display = data.alarms.length ? "none" : "";

    fill("terminals", null, data.terminals, (row, t) => {
      cell(row, t.id);
      cell(row, t.serialNumber);
      cell(row, t.protocol);
      pill(row, t.online ? "online" : "offline");
      if (t.blocked) {
        const td = pill(row, "blocked", "bad");
        td.appendChild(document.createTextNode(" " + (t.blockedReason || "") +
          (t.blockedSinceMs ? " (since " + time(t.blockedSinceMs) + ")" : "")));
      } else {
        cell(row, t.busy ? "busy" : "idle");
      }
      cell(row, time(t.lastSeenMs));
      cell(row, t.lastError || "");
    });

    $("callbacks-count").textContent = data.callbacks.length ? "(" + data.callbacks.length + ")" : "";
    fill("callbacks", "callbacks-empty", data.callbacks, (row, c) => {
      row.dataset.callback = String(c.id);
      cell(row, c.paymentId);
      pill(row, c.state.replace("_", " "), c.state);
      cell(row, c.attempts, "num");
      cell(row, c.state === "given_up" ? "—" : time(c.nextAttemptAt));
      cell(row, c.lastError || "");
      const td = cell(row, null);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "redeliver";
      button.textContent = "Re-deliver now";
      button.addEventListener("click", () => redeliver(c.id, button));
      td.appendChild(button);
    });

    $("payments-count").textContent = data.payments.length ? "(" + data.payments.length + ")" : "";
    fill("payments", "payments-empty", data.payments, (row, p) => {
      row.dataset.payment = p.paymentId;
      cell(row, time(p.createdAt));
      cell(row, p.paymentId);
      pill(row, p.state);
      cell(row, p.amount + " " + p.currency, "num");
      cell(row, [p.cardBrand, p.lastDigits ? "•••• " + p.lastDigits : null].filter(Boolean).join(" "));
      cell(row, p.terminal || "");
    });
    $("updated").textContent = new Date(data.now).toLocaleTimeString();
  }

  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const response = await fetch("/status/api", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { location.href = "/status/login"; return; }
      if (!response.ok) throw new Error("status " + response.status);
      render(await response.json());
      $("error").textContent = "";
    } catch (e) {
      $("error").textContent = "Cannot load the status: " + e.message;
    } finally {
      loading = false;
      if (again) { again = false; load(); }
    }
  }

  async function redeliver(id, button) {
    button.disabled = true;
    button.textContent = "Re-delivering…";
    try {
      const response = await fetch("/status/api/callbacks/" + encodeURIComponent(id) + "/redeliver", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Posbridge-Admin": "1" },
      });
      if (!response.ok) throw new Error("status " + response.status);
      // The outbox tries at once; look again shortly after.
      setTimeout(load, 700);
      setTimeout(load, 2500);
    } catch (e) {
      $("error").textContent = "Re-delivery failed: " + e.message;
      button.disabled = false;
      button.textContent = "Re-deliver now";
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/status/ws");
    socket.onopen = () => {
      retries = 0;
      $("connection").textContent = "live";
      $("connection").className = "live";
      load();
    };
    socket.onmessage = () => load();
    socket.onclose = () => {
      $("connection").textContent = "reconnecting…";
      $("connection").className = "";
      retries += 1;
      setTimeout(connect, Math.min(1000 * retries, 10000));
    };
  }

  load();
  connect();
})();
