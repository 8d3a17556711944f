// posbridge status page: loads /status/api and redraws; reloads on every notice of the
// /status/ws socket (a payment changed, or the periodic tick). No framework, no build step.
// Everything from the server goes in with textContent: never as HTML.
// Times are written in the store's zone (`store.timezone`), 24-hour; amounts as the server
// wrote them for people (`amountText`).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let loading = false;
  let again = false;
  let retries = 0;
  let zone = "UTC";
  let nowMs = Date.now();
  const formatters = new Map();

  function formatter(name) {
    if (!formatters.has(name)) {
      // Throws a RangeError for a zone this browser does not know.
      formatters.set(name, new Intl.DateTimeFormat("en-CA", {
        timeZone: name, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }));
    }
    return formatters.get(name);
  }

  function useZone(name) {
    try {
      formatter(name);
      zone = name;
      $("zone").textContent = name;
    } catch (e) {
      zone = "UTC";
      $("zone").textContent = "UTC (this browser does not know " + name + ")";
    }
  }

  function parts(ms) {
    const p = {};
    for (const part of formatter(zone).formatToParts(new Date(ms))) p[part.type] = part.value;
    return { date: p.year + "-" + p.month + "-" + p.day, time: p.hour + ":" + p.minute, second: p.second };
  }

  // `14:03` today (the store's), `2026-11-29 14:03` another day.
  function when(ms) {
    if (!ms) return "—";
    const p = parts(ms);
    return p.date === parts(nowMs).date ? p.time : p.date + " " + p.time;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== null && text !== undefined) node.textContent = String(text);
    return node;
  }

  function cell(row, text, cls) {
    const td = element("td", cls, text);
    row.appendChild(td);
    return td;
  }

  function pill(row, text, cls) {
    const td = cell(row, null);
    td.appendChild(element("span", "pill " + (cls || text), text));
    return td;
  }

  function button(text, cls, onClick) {
    const b = element("button", "action " + (cls || ""), text);
    b.type = "button";
    b.addEventListener("click", () => onClick(b));
    return b;
  }

  // Draws the rows; on a phone each cell shows its column's name (`data-label`).
  function fill(tableId, emptyId, items, draw) {
    const table = $(tableId);
    const labels = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent);
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const item of items) {
      const row = document.createElement("tr");
      draw(row, item);
      row.querySelectorAll("td").forEach((td, i) => {
        if (labels[i]) td.dataset.label = labels[i];
      });
      body.appendChild(row);
    }
    table.style.display = items.length ? "" : "none";
    if (emptyId) $(emptyId).style.display = items.length ? "none" : "";
  }

  function amountOf(p) {
    return p.amountText || (p.amount + " " + p.currency);
  }

  function resolutionText(r) {
    return "resolved as " + r.decision + " by " + r.by + " at " + when(r.atMs) +
      (r.reason ? ": " + r.reason : "");
  }

  function render(data) {
    nowMs = data.now;
    if (data.store && data.store.timezone) useZone(data.store.timezone);
    const byId = new Map();
    for (const p of (data.alarmedPayments || []).concat(data.payments)) byId.set(p.paymentId, p);

    const open = data.alarms.filter((a) => !a.ackedAtMs);
    $("alarms-count").textContent = open.length ? "(" + open.length + ")" : "";
    const alarms = $("alarms");
    alarms.replaceChildren();
    for (const a of open) {
      const li = element("li");
      if (a.id !== undefined && a.id !== null) li.dataset.alarm = String(a.id);
      if (a.paymentId) li.dataset.payment = a.paymentId;
      li.appendChild(element("p", "text", a.text || a.message || ""));
      const p = a.paymentId ? byId.get(a.paymentId) : null;
      const meta = [
        a.paymentId ? "payment " + a.paymentId : null,
        p ? amountOf(p) : null,
        p && p.terminal ? "terminal " + p.terminal : null,
        a.raisedAtMs ? "since " + when(a.raisedAtMs) : null,
      ].filter(Boolean);
      if (meta.length) li.appendChild(element("div", "meta", meta.join(" · ")));
      const actions = element("div", "actions");
      if (p && p.resolvable) actions.appendChild(button("Resolve…", "primary", () => resolve(p)));
      if (typeof a.id === "number") actions.appendChild(button("Acknowledge", "", () => acknowledge(a)));
      if (actions.childNodes.length) li.appendChild(actions);
      alarms.appendChild(li);
    }
    $("alarms-empty").style.display = open.length ? "none" : "";

    // A store behind the relay tier: the Gateway reaches it only while it is connected.
    const relay = $("relay");
    relay.hidden = !data.relay;
    if (data.relay) {
      relay.textContent = data.relay.connected
        ? "Relay tier: connected as " + data.relay.storeId + "."
        : "Relay tier: NOT connected (" + data.relay.storeId + "): payments through the relay wait until it is back.";
    }
    fill("terminals", null, data.terminals, (row, t) => {
      row.dataset.terminal = t.id;
      cell(row, t.id);
      cell(row, t.serialNumber);
      cell(row, t.protocol);
      const link = t.reachability;
      pill(row, link === "not-contacted" ? "not yet contacted" : link, link);
      if (t.blocked) {
        const td = pill(row, "blocked", "bad");
        td.appendChild(element("span", "detail", (t.blockedReason || "") +
          (t.blockedSinceMs ? " (since " + when(t.blockedSinceMs) + ")" : "")));
      } else {
        cell(row, t.busy ? "busy" : "idle");
      }
      cell(row, t.lastSeenMs ? when(t.lastSeenMs) : "never");
      cell(row, t.lastError || "");
    });

    $("callbacks-count").textContent = data.callbacks.length ? "(" + data.callbacks.length + ")" : "";
    fill("callbacks", "callbacks-empty", data.callbacks, (row, c) => {
      row.dataset.callback = String(c.id);
      cell(row, c.paymentId);
      pill(row, c.state.replace("_", " "), c.state);
      cell(row, c.attempts, "num");
      cell(row, c.state === "given_up" ? "—" : when(c.nextAttemptAt));
      cell(row, c.lastError || "");
      const td = cell(row, null);
      const b = element("button", "redeliver", "Re-deliver now");
      b.type = "button";
      b.addEventListener("click", () => redeliver(c.id, b));
      td.appendChild(b);
    });

    $("payments-count").textContent = data.payments.length ? "(" + data.payments.length + ")" : "";
    $("today-since").textContent = data.todaySinceText ? "since " + data.todaySinceText : "";
    fill("payments", "payments-empty", data.payments, (row, p) => {
      row.dataset.payment = p.paymentId;
      cell(row, when(p.createdAt));
      cell(row, p.paymentId);
      const state = pill(row, p.state);
      if (p.resolution) state.appendChild(element("span", "resolution", resolutionText(p.resolution)));
      cell(row, amountOf(p), "num");
      cell(row, [p.cardBrand, p.lastDigits ? "•••• " + p.lastDigits : null].filter(Boolean).join(" "));
      cell(row, p.terminal || "");
      const td = cell(row, null);
      if (p.resolvable) td.appendChild(button("Resolve…", "primary", () => resolve(p)));
    });
    const now = parts(data.now);
    $("updated").textContent = now.time + ":" + now.second;
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

  // A change asked from the page: the cookie plus the page's header. The answer's JSON.
  async function change(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Posbridge-Admin": "1", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { /* no JSON body */ }
    if (response.status === 401) { location.href = "/status/login"; }
    if (!response.ok) {
      throw new Error(answer.error || answer.message || "posbridge answered " + response.status);
    }
    return answer;
  }

  async function redeliver(id, b) {
    b.disabled = true;
    b.textContent = "Re-delivering…";
    try {
      await change("/status/api/callbacks/" + encodeURIComponent(id) + "/redeliver");
      // The outbox tries at once; look again shortly after.
      setTimeout(load, 700);
      setTimeout(load, 2500);
    } catch (e) {
      $("error").textContent = "Re-delivery failed: " + e.message;
      b.disabled = false;
      b.textContent = "Re-deliver now";
    }
  }

  // The one dialog for acknowledging and resolving: outside the redrawn parts of the page,
  // so a live update never wipes what a person is typing.
  const dialog = $("act");
  $("act-form").addEventListener("submit", (e) => e.preventDefault());

  function showDialog(title, nodes, buttons) {
    $("act-title").textContent = title;
    $("act-body").replaceChildren(...nodes);
    $("act-buttons").replaceChildren(...buttons);
    $("act-problem").textContent = "";
    if (!dialog.open) dialog.showModal();
  }

  function closeDialog() {
    dialog.close();
  }

  function field(labelText, input) {
    const label = element("label", null, labelText);
    label.htmlFor = input.id;
    return [label, input];
  }

  // What a person typed, on one line: posbridge refuses control characters in a note or a
  // reason, and a line break there is only layout.
  function typed(input) {
    return input.value.replace(/\s+/g, " ").trim();
  }

  function textInput(id, tag, maxLength) {
    const input = element(tag || "input");
    input.id = id;
    if (!tag) input.type = "text";
    if (maxLength) input.maxLength = maxLength;
    return input;
  }

  // Runs a change from the dialog: buttons off while it runs; the answer closes the dialog,
  // a refusal stays in it with the daemon's words.
  async function submit(path, body) {
    const buttons = $("act-buttons").querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await change(path, body);
      closeDialog();
      load();
    } catch (e) {
      $("act-problem").textContent = e.message;
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function acknowledge(alarm) {
    const note = textInput("act-note", "textarea", 500);
    note.rows = 2;
    showDialog("Acknowledge this alarm", [
      element("p", null, alarm.text || alarm.message || ""),
      element("p", "note", "It leaves the list (and doctor's failure); it stays in the history."),
      ...field("Note (optional): what was done", note),
    ], [
      button("Acknowledge", "primary", () => submit(
        "/status/api/alarms/" + encodeURIComponent(alarm.id) + "/ack",
        typed(note) ? { note: typed(note) } : {})),
      button("Cancel", "", closeDialog),
    ]);
  }

  function resolve(p) {
    const choices = element("fieldset");
    choices.appendChild(element("legend", "note", "What did the terminal's receipt or the acquirer's report show?"));
    for (const decision of ["approved", "denied"]) {
      const label = element("label");
      const radio = element("input");
      radio.type = "radio";
      radio.name = "decision";
      radio.value = decision;
      radio.id = "act-" + decision;
      label.append(radio, decision === "approved" ? "Approved" : "Denied");
      choices.appendChild(label);
    }
    const reason = textInput("act-reason", "textarea", 500);
    reason.rows = 2;
    reason.required = true;
    const receipt = element("details");
    receipt.appendChild(element("summary", null, "From the receipt (optional, approved only)"));
    const extra = {
      cardBrand: textInput("act-brand", null, 40),
      firstDigits: textInput("act-first", null, 6),
      lastDigits: textInput("act-last", null, 4),
      nsu: textInput("act-nsu", null, 40),
      authorizationId: textInput("act-auth", null, 40),
    };
    receipt.append(
      ...field("Card brand", extra.cardBrand),
      ...field("First 6 digits", extra.firstDigits),
      ...field("Last 4 digits", extra.lastDigits),
      ...field("NSU", extra.nsu),
      ...field("Authorization code", extra.authorizationId),
    );
    const title = "Resolve payment " + p.paymentId;
    const facts = element("p", null, [
      amountOf(p), p.terminal ? "terminal " + p.terminal : null, "created " + when(p.createdAt),
    ].filter(Boolean).join(" · "));
    const form = [facts, choices, ...field("Reason (required): what you saw, where", reason), receipt];

    const ask = () => showDialog(title, form, [
      button("Continue…", "primary", () => {
        const chosen = choices.querySelector("input:checked");
        if (!chosen) {
          $("act-problem").textContent = "Choose approved or denied.";
          return;
        }
        if (!typed(reason)) {
          $("act-problem").textContent = "A reason is required: what the receipt or the acquirer's report shows.";
          reason.focus();
          return;
        }
        confirmStep(chosen.value);
      }),
      button("Cancel", "", closeDialog),
    ]);

    const confirmStep = (decision) => {
      const body = { decision, reason: typed(reason) };
      if (decision === "approved") {
        for (const [key, input] of Object.entries(extra)) {
          if (typed(input)) body[key] = typed(input);
        }
      }
      const question = element("p", "question");
      question.append("Resolve payment " + p.paymentId + " of ",
        element("span", "amount", amountOf(p)),
        " as " + decision.toUpperCase() + "? The Gateway will be told.");
      showDialog("Confirm", [
        question,
        element("p", "note", "Reason: " + body.reason),
      ], [
        button("Yes, resolve as " + decision, decision === "approved" ? "primary" : "danger",
          () => submit("/status/api/payments/" + encodeURIComponent(p.paymentId) + "/resolve", body)),
        button("Back", "", ask),
      ]);
    };
    ask();
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
